"""rejected bodies as safe JSON text

A rejected event's body is kept as JSON text in which NUL characters and lone surrogates are
escapes, so any body can be stored (JSONB refuses both); ``raw_complete`` says whether the text is
the whole body, and ``body_hash`` finds the same body sent again.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

#: Back to JSONB: NUL and lone-surrogate escapes become U+FFFD (JSONB takes neither); a cut body is
#: kept as one JSON string.
TO_JSONB = (
    "CASE WHEN raw_complete THEN regexp_replace(replace(raw, '\\u0000', '\\ufffd'), "
    "'\\\\u[dD][89a-fA-F][0-9a-fA-F]{2}', '\\ufffd', 'g')::jsonb ELSE to_jsonb(raw) END"
)


def upgrade() -> None:
    with op.batch_alter_table("rejected_event") as batch:
        batch.alter_column(
            "raw",
            existing_type=JSON_TYPE,
            type_=sa.Text(),
            existing_nullable=False,
            postgresql_using="raw::text",
        )
        batch.add_column(
            sa.Column("raw_complete", sa.Boolean(), server_default=sa.text("true"), nullable=False)
        )
        batch.add_column(sa.Column("body_hash", sa.String(length=64), nullable=True))
        batch.create_index(batch.f("ix_rejected_event__body_hash"), ["body_hash"], unique=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":  # SQLite's JSON is text: only a cut body needs quoting
        op.execute("UPDATE rejected_event SET raw = json_quote(raw) WHERE NOT raw_complete")
    with op.batch_alter_table("rejected_event") as batch:
        batch.drop_index(batch.f("ix_rejected_event__body_hash"))
        batch.drop_column("body_hash")
        batch.alter_column(
            "raw",
            existing_type=sa.Text(),
            type_=JSON_TYPE,
            existing_nullable=False,
            postgresql_using=TO_JSONB,
        )
        batch.drop_column("raw_complete")
