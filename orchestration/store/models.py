"""SQLAlchemy 2 models of the run store: runs, their step records, the event ids that opened them and
the outbox of their publications. The control plane's are in ``control_models``; Alembic migrations
in ``migrations/`` build both."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from orchestration.names import RunStatus, StepStatus
from orchestration.store.metadata import Base, JSONType, server_now

#: What ``run.status`` accepts (its check constraint: migration 0001, ``waiting`` since 0017).
RUN_STATUSES = tuple(s.value for s in RunStatus)
#: What ``step_record.status`` accepts (its check constraint).
STEP_STATUSES = tuple(s.value for s in StepStatus)


class Run(Base):
    __tablename__ = "run"

    run_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    flow_name: Mapped[str] = mapped_column(sa.String(120), index=True)
    flow_version: Mapped[str] = mapped_column(sa.String(40))
    flow_def: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(sa.String(16), index=True)
    mode: Mapped[str] = mapped_column(sa.String(8), server_default="async")
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    event_id: Mapped[str | None] = mapped_column(sa.String(200), index=True)
    campaign: Mapped[str | None] = mapped_column(sa.String(120), index=True)
    orchestrator: Mapped[str | None] = mapped_column(sa.String(120))
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    extra: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    redrives: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    #: The number of its current publication (its ``run_outbox`` row): 1 when it was opened for the
    #: workers, one more at each retry or re-drive; 0 for a run that only ran inline.
    publication: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    #: The token of the publish whose first tasks took the current publication (None: not yet).
    start_token: Mapped[str | None] = mapped_column(sa.String(200))
    #: 0 (default) to 9: its steps' messages carry it; a higher one gets permits and workers first.
    priority: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    created_at: Mapped[datetime] = mapped_column(server_default=server_now())
    updated_at: Mapped[datetime] = mapped_column(server_default=server_now())
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    deadline_at: Mapped[datetime | None]

    __table_args__ = (
        sa.CheckConstraint(sa.column("status").in_(RUN_STATUSES), name="status"),
        sa.Index(None, "status", "updated_at"),
        sa.Index(None, "finished_at"),  # retention: finished runs oldest first (migration 0009)
        # the runs list: newest first, keyset paging on (created_at, run_id)
        sa.Index(None, "created_at", "run_id"),
    )


class StepRecordRow(Base):
    __tablename__ = "step_record"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    run_id: Mapped[str] = mapped_column(sa.ForeignKey("run.run_id", ondelete="CASCADE"))
    step_id: Mapped[str] = mapped_column(sa.String(200))
    agent: Mapped[str | None] = mapped_column(sa.String(120))
    status: Mapped[str] = mapped_column(sa.String(16))
    attempts: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    #: What the agent ran with: its resolved input, secret fields redacted (written when a try starts).
    input: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    output: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    attempt_errors: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    #: What the status alone does not say: "finished after the run was cancelled" and the like.
    note: Mapped[str | None] = mapped_column(sa.String(200))
    #: When each try started, and its Celery task: ``[{"attempt", "started_at", "task_id"}, ...]``
    #: (a redelivered try appears again); the console draws its timeline and Flower links from it.
    tries: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    #: Tries made before the current retry budget (a retried run gives its retried steps a fresh one).
    retry_base: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    #: Seconds the step waited for permits of its cluster-wide limits (put back, holding no worker).
    throttled_seconds: Mapped[float] = mapped_column(sa.Float, server_default="0")
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(server_default=server_now())

    __table_args__ = (
        sa.UniqueConstraint("run_id", "step_id"),
        sa.CheckConstraint(sa.column("status").in_(STEP_STATUSES), name="status"),
    )


class RunCounter(Base):
    """Runs started and finished, counted as they happen, never lowered by a retry or a purge.

    A trigger on ``run.status`` (migration 0009, both databases) adds one row per transition in
    the transaction that makes it: ``kind`` ``started`` (queued, or a retried run, to ``running``)
    or ``finished`` (to a terminal ``status``). Inserts only, so concurrent runs never wait for each
    other here; the retention task folds the rows into one per ``(flow_name, kind, status)``
    (``store.counters``). A migration that rebuilds ``run`` on SQLite (batch mode) drops the
    triggers with the old table and must create them again (``migrations/counting.py``).
    """

    __tablename__ = "run_counter"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    flow_name: Mapped[str] = mapped_column(sa.String(120))
    kind: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(16))
    n: Mapped[int] = mapped_column(sa.BigInteger, server_default="1")


class IngestKey(Base):
    """One row per accepted event id: the same event twice gives the same run."""

    __tablename__ = "ingest_key"

    event_id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    run_id: Mapped[str] = mapped_column(sa.String(36))
    created_at: Mapped[datetime] = mapped_column(server_default=server_now())


#: What made a publication: the run was opened, retried, or re-driven by the sweeper; or a waiting
#: run woke (``wake``: a timer or a signal; ``timeout``: its wait timed out) and its continuation goes.
PUBLICATION_KINDS = ("open", "retry", "redrive", "wake", "timeout")


class OutboxEntry(Base):
    """One publication of a run, written in the transaction that opens, retries or re-drives it.

    The process that wrote it publishes it right after the commit and sets ``published_at``; what is
    still unpublished a few seconds later (the broker was down, the process died) the relay publishes.
    ``attempts`` and ``last_error`` count and tell the publishes that failed."""

    __tablename__ = "run_outbox"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    run_id: Mapped[str] = mapped_column(sa.ForeignKey("run.run_id", ondelete="CASCADE"))
    publication: Mapped[int] = mapped_column(sa.Integer)
    kind: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(server_default=server_now())
    published_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    #: A wake-up's publication: the id of the ``sleep`` or ``wait`` node whose continuation (the rest
    #: of the flow after it) is published; None: the whole flow.
    resume: Mapped[str | None] = mapped_column(sa.String(200))

    __table_args__ = (
        sa.UniqueConstraint("run_id", "publication"),
        sa.CheckConstraint(sa.column("kind").in_(PUBLICATION_KINDS), name="kind"),
        # the relay's query: what is still unpublished, oldest first
        sa.Index(
            "ix_run_outbox__pending",
            "created_at",
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        ),
    )
