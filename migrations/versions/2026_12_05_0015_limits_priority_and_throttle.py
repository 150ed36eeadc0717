"""run priority and step throttled seconds

Revision ID: 0015
Revises: 0012
Create Date: 2026-12-05 09:00:00.000000

``run.priority``: 0 (the default, marketing) to 9 (transactional first), from the event, its
route or its campaign; its steps' messages carry it and the cluster-wide limits serve a higher one
first. ``step_record.throttled_seconds``: how long the step waited for permits of its cluster-wide
limits (put back, not holding a worker). Plain ``ADD COLUMN`` on both databases: no table is
rebuilt (SQLite's run triggers stay).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("run", sa.Column("priority", sa.Integer(), server_default="0", nullable=False))
    op.add_column(
        "step_record", sa.Column("throttled_seconds", sa.Float(), server_default="0", nullable=False)
    )


def downgrade() -> None:
    # plain DROP COLUMN (SQLite 3.35+): batch mode would rebuild run and drop its triggers
    op.drop_column("step_record", "throttled_seconds")
    op.drop_column("run", "priority")
