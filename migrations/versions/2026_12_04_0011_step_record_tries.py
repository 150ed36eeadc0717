"""step record tries

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 09:00:00.000000

``tries``: when each try of a step started and the Celery task that ran it
(``[{"attempt", "started_at", "task_id"}, ...]``), appended by the statement that begins the try.
The web console draws a run's timeline (a bar per try, the waits between them) and its links to
Flower's task pages from it. Records written before it keep it null.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("step_record") as batch:
        batch.add_column(
            sa.Column(
                "tries",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("step_record") as batch:
        batch.drop_column("tries")
