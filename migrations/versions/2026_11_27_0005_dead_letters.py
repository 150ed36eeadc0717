"""dead letters

Messages the workers cannot process (undecodable, refused content type, unknown task, not a task
message), kept with their raw body, headers and reason; the same message seen again bumps a count.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 09:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
NOW = sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    op.create_table(
        "dead_letter",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("queue", sa.String(length=200), nullable=False),
        sa.Column("task", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("content_type", sa.String(length=200), nullable=True),
        sa.Column("content_encoding", sa.String(length=80), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("body_size", BIG_ID, nullable=False),
        sa.Column("count", sa.Integer(), server_default="1", nullable=False),
        sa.Column("status", sa.String(length=16), server_default="dead", nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letter")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_dead_letter__fingerprint")),
    )
    op.create_index(op.f("ix_dead_letter__last_seen"), "dead_letter", ["last_seen"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_dead_letter__last_seen"), table_name="dead_letter")
    op.drop_table("dead_letter")
