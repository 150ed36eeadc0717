"""step record input

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-03 09:00:00.000000

``input``: the resolved input an agent step ran with (references replaced by their values, the
defaults of the agent's input model applied, secret fields redacted), written when its try starts.
Records of joins, branches, maps and skipped steps keep it null.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("step_record") as batch:
        batch.add_column(
            sa.Column(
                "input",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("step_record") as batch:
        batch.drop_column("input")
