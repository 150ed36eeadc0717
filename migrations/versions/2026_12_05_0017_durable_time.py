"""durable time

A run may be ``waiting`` (parked by a ``sleep`` or ``wait`` node): ``run_timer`` holds when it wakes,
``run_wait`` its open waits, ``run_signal`` the signals sent to it. A wake-up is published through
the outbox: ``run_outbox.kind`` gains ``wake`` and ``timeout``, and ``run_outbox.resume`` names the
node whose continuation is published. A routing rule may resume waiting runs (``resume_signal``,
``resume_key``) instead of, or besides, starting one.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from migrations.counting import create_triggers, drop_triggers

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(JSONB(), "postgresql")
NOW = sa.text("CURRENT_TIMESTAMP")
AT = sa.DateTime(timezone=True)
RUN_ID = sa.String(length=36)

RUN_STATUS_OLD = "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')"
RUN_STATUS_NEW = "status IN ('queued', 'running', 'waiting', 'succeeded', 'failed', 'cancelled')"
KIND_OLD = "kind IN ('open', 'retry', 'redrive')"
KIND_NEW = "kind IN ('open', 'retry', 'redrive', 'wake', 'timeout')"


def _checks(run_status: str, kind: str) -> None:
    with op.batch_alter_table("run") as batch:
        batch.drop_constraint("ck_run__status", type_="check")
        batch.create_check_constraint(op.f("ck_run__status"), run_status)
    with op.batch_alter_table("run_outbox") as batch:
        batch.drop_constraint("ck_run_outbox__kind", type_="check")
        batch.create_check_constraint(op.f("ck_run_outbox__kind"), kind)
    # SQLite rebuilt ``run`` without its counting triggers (0009): create them again
    drop_triggers()
    create_triggers()


def _run_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["run_id"], ["run.run_id"], name=op.f(f"fk_{table}__run_id__run"), ondelete="CASCADE"
    )


ROUTE_TARGET_OLD = "(orchestrator IS NULL) != (flow IS NULL)"
ROUTE_TARGET_NEW = (
    "(orchestrator IS NULL OR flow IS NULL) AND (resume_signal IS NULL) = (resume_key IS NULL) "
    "AND NOT (orchestrator IS NULL AND flow IS NULL AND resume_signal IS NULL)"
)


def _route_target(check: str) -> None:
    with op.batch_alter_table("routing_rule") as batch:
        batch.drop_constraint("ck_routing_rule__target", type_="check")
        batch.create_check_constraint(op.f("ck_routing_rule__target"), check)


def upgrade() -> None:
    op.add_column("run_outbox", sa.Column("resume", sa.String(length=200), nullable=True))
    _checks(RUN_STATUS_NEW, KIND_NEW)
    op.add_column("routing_rule", sa.Column("resume_signal", sa.String(length=120), nullable=True))
    op.add_column("routing_rule", sa.Column("resume_key", sa.String(length=200), nullable=True))
    _route_target(ROUTE_TARGET_NEW)
    op.create_table(
        "run_timer",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("run_id", RUN_ID, nullable=False),
        sa.Column("node_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("due_at", AT, nullable=False),
        sa.Column("fired_at", AT, nullable=True),
        sa.Column("created_at", AT, server_default=NOW, nullable=False),
        sa.CheckConstraint("kind IN ('sleep', 'timeout')", name=op.f("ck_run_timer__kind")),
        _run_fk("run_timer"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_timer")),
    )
    op.create_index(op.f("ix_run_timer__run_id"), "run_timer", ["run_id"])
    due = sa.text("fired_at IS NULL")
    op.create_index("ix_run_timer__due", "run_timer", ["due_at"], postgresql_where=due, sqlite_where=due)
    op.create_table(
        "run_wait",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("run_id", RUN_ID, nullable=False),
        sa.Column("node_id", sa.String(length=200), nullable=False),
        sa.Column("signal", sa.String(length=120), nullable=False),
        sa.Column("correlation", sa.String(length=500), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("timeout_at", AT, nullable=True),
        sa.Column("created_at", AT, server_default=NOW, nullable=False),
        sa.Column("closed_at", AT, nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'signalled', 'timed_out', 'closed')", name=op.f("ck_run_wait__status")
        ),
        _run_fk("run_wait"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_wait")),
    )
    op.create_index(op.f("ix_run_wait__run_id"), "run_wait", ["run_id"])
    is_open = sa.text("status = 'open'")
    op.create_index(
        "ix_run_wait__open",
        "run_wait",
        ["signal", "correlation"],
        postgresql_where=is_open,
        sqlite_where=is_open,
    )
    op.create_table(
        "run_signal",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("run_id", RUN_ID, nullable=False),
        sa.Column("signal_id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("data", JSON, nullable=True),
        sa.Column("created_at", AT, server_default=NOW, nullable=False),
        sa.Column("consumed_at", AT, nullable=True),
        sa.Column("consumed_by", sa.String(length=200), nullable=True),
        _run_fk("run_signal"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_signal")),
        sa.UniqueConstraint("run_id", "signal_id", name=op.f("uq_run_signal__run_id_signal_id")),
    )
    op.create_index(op.f("ix_run_signal__run_id_name"), "run_signal", ["run_id", "name"])


def downgrade() -> None:
    op.drop_table("run_signal")
    op.drop_table("run_wait")
    op.drop_table("run_timer")
    op.execute("DELETE FROM routing_rule WHERE orchestrator IS NULL AND flow IS NULL")
    _route_target(ROUTE_TARGET_OLD)
    with op.batch_alter_table("routing_rule") as batch:
        batch.drop_column("resume_key")
        batch.drop_column("resume_signal")
    op.execute("DELETE FROM run_outbox WHERE kind IN ('wake', 'timeout')")
    op.execute("UPDATE run SET status = 'running' WHERE status = 'waiting'")
    _checks(RUN_STATUS_OLD, KIND_OLD)
    with op.batch_alter_table("run_outbox") as batch:
        batch.drop_column("resume")
