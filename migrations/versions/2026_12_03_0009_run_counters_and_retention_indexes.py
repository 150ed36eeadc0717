"""run counters and retention indexes

``run_counter``: runs started and finished, counted by a trigger on ``run.status`` in the
transaction of each transition (``migrations/counting.py``), so the metrics are counters that a
retry or a purge never lowers; seeded from the runs already stored. Indexes for the retention
purges: ``run.finished_at`` and ``rejected_event.created_at`` (``dead_letter.last_seen`` has one).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.counting import create_triggers, drop_triggers

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

#: The counts of the runs already stored: one start per run that started, one end per finished run.
_SEED = """
INSERT INTO run_counter (flow_name, kind, status, n)
SELECT flow_name, 'started', 'running', count(*) FROM run WHERE started_at IS NOT NULL GROUP BY flow_name
UNION ALL
SELECT flow_name, 'finished', status, count(*) FROM run
WHERE status IN ('succeeded', 'failed', 'cancelled') GROUP BY flow_name, status
"""


def upgrade() -> None:
    op.create_table(
        "run_counter",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("flow_name", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("n", sa.BigInteger(), server_default="1", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_counter")),
    )
    # the trigger first: on Postgres creating it waits for, then holds off, every write to ``run``
    # until this transaction commits, so the seed and the trigger count each transition once
    create_triggers()
    op.execute(_SEED)
    _create_index("ix_run__finished_at", "run", "finished_at")
    _create_index("ix_rejected_event__created_at", "rejected_event", "created_at")


def _create_index(name: str, table: str, column: str) -> None:
    """On a Postgres table that holds rows the index is built concurrently, outside the
    migration's transaction, so a big ``run`` table takes writes meanwhile. An empty table (a new
    store) gets it at once: a concurrent build would wait for every older transaction of the
    database first."""
    bind = op.get_bind()
    empty = bind.execute(sa.select(sa.literal(1)).select_from(sa.table(table)).limit(1)).first() is None
    if bind.dialect.name != "postgresql" or empty:
        op.create_index(op.f(name), table, [column], unique=False)
        return
    with op.get_context().autocommit_block():
        op.create_index(op.f(name), table, [column], unique=False, postgresql_concurrently=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_rejected_event__created_at"), table_name="rejected_event")
    op.drop_index(op.f("ix_run__finished_at"), table_name="run")
    drop_triggers()
    op.drop_table("run_counter")
