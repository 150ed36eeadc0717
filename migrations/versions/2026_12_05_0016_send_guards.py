"""send guards

The sending guards' tables: the suppression list (``suppression``) and its audit log
(``suppression_log``), the frequency-cap slots (``frequency_slot``, one per marketing message
counted, on the recipient's local day) with the per-recipient row a cap check locks
(``recipient_guard``), and the backoff of receiving domains that defer (``domain_backoff``).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
NOW = sa.text("CURRENT_TIMESTAMP")
REASONS = "reason IN ('unsubscribed', 'bounced', 'complained', 'manual')"


def upgrade() -> None:
    op.create_table(
        "suppression",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=240), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.CheckConstraint(REASONS, name=op.f("ck_suppression__reason")),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_suppression")),
    )
    op.create_table(
        "suppression_log",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=True),
        sa.Column("source", sa.String(length=240), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppression_log")),
    )
    op.create_index(op.f("ix_suppression_log__address"), "suppression_log", ["address"], unique=False)
    op.create_table(
        "frequency_slot",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("key", sa.String(length=240), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("campaign", sa.String(length=120), nullable=True),
        sa.Column("local_day", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_frequency_slot")),
        sa.UniqueConstraint("key", name=op.f("uq_frequency_slot__key")),
    )
    op.create_index(
        "ix_frequency_slot__recipient_day", "frequency_slot", ["recipient", "local_day"], unique=False
    )
    op.create_table(
        "recipient_guard",
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("recipient", name=op.f("pk_recipient_guard")),
    )
    op.create_table(
        "domain_backoff",
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("strikes", sa.Integer(), server_default="0", nullable=False),
        sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_reply", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("domain", name=op.f("pk_domain_backoff")),
    )


def downgrade() -> None:
    op.drop_table("domain_backoff")
    op.drop_table("recipient_guard")
    op.drop_index("ix_frequency_slot__recipient_day", table_name="frequency_slot")
    op.drop_table("frequency_slot")
    op.drop_index(op.f("ix_suppression_log__address"), table_name="suppression_log")
    op.drop_table("suppression_log")
    op.drop_table("suppression")
