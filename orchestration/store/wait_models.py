"""The tables of durable time: timers (``run_timer``), open waits (``run_wait``) and the signals sent
to runs (``run_signal``). A waiting run holds no broker message and no worker: these rows are all
there is of it until it wakes (migration 0017)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from orchestration.store.metadata import Base, JSONType, server_now

BIG_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")

#: ``run_timer.kind``: a ``sleep`` node's wake-up, or a ``wait`` node's timeout.
TIMER_KINDS = ("sleep", "timeout")
#: ``run_wait.status``: open until a signal resumes it, its timer times it out, or the run ends.
WAIT_STATUSES = ("open", "signalled", "timed_out", "closed")


class RunTimer(Base):
    """A moment a parked run wakes at. The poller claims the due ones (``fired_at`` null) in batches,
    sets ``fired_at`` and writes the wake-up's outbox row in one transaction."""

    __tablename__ = "run_timer"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    run_id: Mapped[str] = mapped_column(sa.ForeignKey("run.run_id", ondelete="CASCADE"), index=True)
    node_id: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[str] = mapped_column(sa.String(16))
    due_at: Mapped[datetime]
    fired_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=server_now())

    __table_args__ = (
        sa.CheckConstraint(sa.column("kind").in_(TIMER_KINDS), name="kind"),
        # the poller's query: what is due and not fired yet, soonest first
        sa.Index(
            "ix_run_timer__due",
            "due_at",
            postgresql_where=sa.text("fired_at IS NULL"),
            sqlite_where=sa.text("fired_at IS NULL"),
        ),
    )


class RunWait(Base):
    """A ``wait`` node's open wait: the signal it waits for and, for events, its correlation value."""

    __tablename__ = "run_wait"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    run_id: Mapped[str] = mapped_column(sa.ForeignKey("run.run_id", ondelete="CASCADE"), index=True)
    node_id: Mapped[str] = mapped_column(sa.String(200))
    signal: Mapped[str] = mapped_column(sa.String(120))
    #: The value a correlated event must carry to resume this wait (the node's ``correlate``).
    correlation: Mapped[str | None] = mapped_column(sa.String(500))
    status: Mapped[str] = mapped_column(sa.String(16), server_default="open")
    #: When it times out (its ``timeout`` timer's ``due_at``), if it does.
    timeout_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=server_now())
    closed_at: Mapped[datetime | None]

    __table_args__ = (
        sa.CheckConstraint(sa.column("status").in_(WAIT_STATUSES), name="status"),
        # events find the open waits they resume by signal and correlation value
        sa.Index(
            "ix_run_wait__open",
            "signal",
            "correlation",
            postgresql_where=sa.text("status = 'open'"),
            sqlite_where=sa.text("status = 'open'"),
        ),
    )


class RunSignal(Base):
    """A signal sent to a run: kept until a wait for its name consumes it (a signal may come first).
    ``signal_id`` makes a signal sent twice one signal."""

    __tablename__ = "run_signal"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    run_id: Mapped[str] = mapped_column(sa.ForeignKey("run.run_id", ondelete="CASCADE"))
    signal_id: Mapped[str] = mapped_column(sa.String(200))
    name: Mapped[str] = mapped_column(sa.String(120))
    data: Mapped[Any] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(server_default=server_now())
    #: When a wait took it, and which node's.
    consumed_at: Mapped[datetime | None]
    consumed_by: Mapped[str | None] = mapped_column(sa.String(200))

    __table_args__ = (sa.UniqueConstraint("run_id", "signal_id"), sa.Index(None, "run_id", "name"))
