"""run list index

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 09:00:00.000000

The runs list (``GET /v1/runs``, ``campaignflow runs list``) shows the newest runs first and pages
by the key ``(created_at, run_id)``: this index serves both, whatever the number of runs.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_run__created_at_run_id"), "run", ["created_at", "run_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_run__created_at_run_id"), table_name="run")
