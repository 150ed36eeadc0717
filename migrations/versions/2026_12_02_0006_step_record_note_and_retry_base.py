"""step record note and retry base

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 09:00:00.000000

``note``: what a record's status alone does not say (a result that arrived after the run was
cancelled or past its deadline). ``retry_base``: the tries made before the current retry budget (a
retried run gives its retried steps a fresh budget).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("step_record") as batch:
        batch.add_column(sa.Column("note", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("retry_base", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("step_record") as batch:
        batch.drop_column("retry_base")
        batch.drop_column("note")
