"""outbox

A run's publication goes through an outbox: the ``run_outbox`` row is written in the transaction
that opens (retries, re-drives) the run and is published after the commit, by the process that wrote
it or by the relay. ``run.publication`` numbers the run's current publication and
``run.start_token`` names the publish whose first tasks took it, so a publication sent twice starts
once.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.counting import create_triggers, drop_triggers

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
NOW = sa.text("CURRENT_TIMESTAMP")
PENDING = sa.text("published_at IS NULL")


def upgrade() -> None:
    # ADD COLUMN, also on SQLite: ``run`` is not rebuilt, so its counting triggers (0009) stay
    op.add_column("run", sa.Column("publication", sa.Integer(), server_default="0", nullable=False))
    op.add_column("run", sa.Column("start_token", sa.String(length=200), nullable=True))
    op.create_table(
        "run_outbox",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("publication", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint("kind IN ('open', 'retry', 'redrive')", name=op.f("ck_run_outbox__kind")),
        sa.ForeignKeyConstraint(
            ["run_id"], ["run.run_id"], name=op.f("fk_run_outbox__run_id__run"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_outbox")),
        sa.UniqueConstraint("run_id", "publication", name=op.f("uq_run_outbox__run_id_publication")),
    )
    op.create_index(
        "ix_run_outbox__pending",
        "run_outbox",
        ["created_at"],
        unique=False,
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_run_outbox__pending", table_name="run_outbox")
    op.drop_table("run_outbox")
    with op.batch_alter_table("run") as batch:
        batch.drop_column("start_token")
        batch.drop_column("publication")
    # SQLite rebuilt ``run`` without its triggers: count on (Postgres keeps them; this replaces them)
    drop_triggers()
    create_triggers()
