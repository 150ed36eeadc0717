"""SQLAlchemy 2 models of the run store. Alembic migrations in ``migrations/`` build this schema."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from orchestration.names import RunStatus, StepStatus

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")

NAMING = {
    "ix": "ix_%(table_name)s__%(column_0_N_name)s",
    "uq": "uq_%(table_name)s__%(column_0_N_name)s",
    "ck": "ck_%(table_name)s__%(constraint_name)s",
    "fk": "fk_%(table_name)s__%(column_0_N_name)s__%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: What ``run.status`` accepts (its check constraint, built by migration 0001): every run status but
#: ``waiting``, which a migration adds when durable waits land.
RUN_STATUSES = tuple(s.value for s in RunStatus if s is not RunStatus.WAITING)
#: What ``step_record.status`` accepts (its check constraint).
STEP_STATUSES = tuple(s.value for s in StepStatus)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSONType, datetime: sa.DateTime(timezone=True)}


def _now() -> sa.ColumnElement[datetime]:
    return sa.func.current_timestamp()


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
    created_at: Mapped[datetime] = mapped_column(server_default=_now())
    updated_at: Mapped[datetime] = mapped_column(server_default=_now())
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    deadline_at: Mapped[datetime | None]

    __table_args__ = (
        sa.CheckConstraint(sa.column("status").in_(RUN_STATUSES), name="status"),
        sa.Index(None, "status", "updated_at"),
    )


class StepRecord(Base):
    __tablename__ = "step_record"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    run_id: Mapped[str] = mapped_column(sa.ForeignKey("run.run_id", ondelete="CASCADE"))
    step_id: Mapped[str] = mapped_column(sa.String(200))
    agent: Mapped[str | None] = mapped_column(sa.String(120))
    status: Mapped[str] = mapped_column(sa.String(16))
    attempts: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    output: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    attempt_errors: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(server_default=_now())

    __table_args__ = (
        sa.UniqueConstraint("run_id", "step_id"),
        sa.CheckConstraint(sa.column("status").in_(STEP_STATUSES), name="status"),
    )


class IngestKey(Base):
    """One row per accepted event id: the same event twice gives the same run."""

    __tablename__ = "ingest_key"

    event_id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    run_id: Mapped[str] = mapped_column(sa.String(36))
    created_at: Mapped[datetime] = mapped_column(server_default=_now())


class CrmContact(Base):
    """The CRM table the crm_write agent upserts into (the local CRM of the demo and the tests)."""

    __tablename__ = "crm_contact"

    email: Mapped[str] = mapped_column(sa.String(320), primary_key=True)
    name: Mapped[str | None] = mapped_column(sa.String(200))
    company: Mapped[str | None] = mapped_column(sa.String(200))
    segment: Mapped[str | None] = mapped_column(sa.String(40))
    score: Mapped[int | None] = mapped_column(sa.Integer)
    last_write_key: Mapped[str | None] = mapped_column(sa.String(240))
    writes: Mapped[int] = mapped_column(sa.Integer, server_default="1")
    updated_at: Mapped[datetime] = mapped_column(server_default=_now())


from orchestration.store import control_models as _control_models  # noqa: E402,F401  (same metadata)
