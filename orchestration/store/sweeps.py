"""What the sweeper reads and writes: open runs (live or waiting) past their deadline, live runs
with no progress (a waiting run is not stalled: it holds no message), and the count of re-drives."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestration.names import LIVE_RUN_STATUSES, OPEN_RUN_STATUSES
from orchestration.store.base import AnyRow
from orchestration.store.tables import outbox_t, run_t, step_t


def runs_past_deadline(conn: Connection, now: datetime) -> list[str]:
    """Runs not ended (waiting ones too: the deadline bounds a wait) whose deadline passed."""
    query = sa.select(run_t.c.run_id).where(run_t.c.status.in_(OPEN_RUN_STATUSES), run_t.c.deadline_at < now)
    return list(conn.execute(query).scalars())


def stalled_runs(conn: Connection, before: datetime, limit: int) -> list[AnyRow]:
    """Live runs whose last write (run or any step) is older than ``before``, oldest first:
    ``run_id``, ``redrives``, ``flow_def``, ``deadline_at``, ``priority``. A run whose publication is
    still in the outbox is not stalled: it waits for the broker, and the relay publishes it."""
    last_step = (
        sa.select(step_t.c.run_id, sa.func.max(step_t.c.updated_at).label("at"))
        .group_by(step_t.c.run_id)
        .subquery()
    )
    progress = sa.func.coalesce(last_step.c.at, run_t.c.updated_at)
    query = (
        sa.select(run_t.c.run_id, run_t.c.redrives, run_t.c.flow_def, run_t.c.deadline_at, run_t.c.priority)
        .select_from(run_t.outerjoin(last_step, last_step.c.run_id == run_t.c.run_id))
        .where(
            run_t.c.status.in_(LIVE_RUN_STATUSES),
            run_t.c.updated_at < before,
            progress < before,
            ~sa.exists().where(outbox_t.c.run_id == run_t.c.run_id, outbox_t.c.published_at.is_(None)),
        )
        .order_by(run_t.c.updated_at)
        .limit(limit)
    )
    return list(conn.execute(query))


def count_redrive(conn: Connection, run_id: str, now: datetime) -> None:
    """The run is published again (on the workers): one more re-drive, progress as of ``now``."""
    conn.execute(
        run_t.update()
        .where(run_t.c.run_id == run_id)
        .values(redrives=run_t.c.redrives + 1, updated_at=now, mode="async")
    )
