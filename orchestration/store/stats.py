"""Read-only counts for operators: live runs per flow and status (metrics), finished runs and
first-step starts (bench), the rows of a table (demo), and a ping (doctor)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestration.names import OPEN_RUN_STATUSES, TERMINAL_RUN_STATUSES
from orchestration.store.base import aware
from orchestration.store.tables import run_t, step_t


def ping(conn: Connection) -> None:
    """One round trip (``SELECT 1``): raises when the database does not answer."""
    conn.execute(sa.select(sa.literal(1))).scalar_one()


def live_counts(conn: Connection) -> dict[tuple[str, str], int]:
    """``(flow, status) -> runs`` queued, running or waiting now (the ``status`` index finds them)."""
    query = (
        sa.select(run_t.c.flow_name, run_t.c.status, sa.func.count())
        .where(run_t.c.status.in_(OPEN_RUN_STATUSES))
        .group_by(run_t.c.flow_name, run_t.c.status)
    )
    return {(str(f), str(s)): int(n) for f, s, n in conn.execute(query)}


def count_finished(conn: Connection, run_ids: Collection[str]) -> int:
    """How many of ``run_ids`` are terminal."""
    query = sa.select(sa.func.count()).where(
        run_t.c.run_id.in_(run_ids), run_t.c.status.in_(TERMINAL_RUN_STATUSES)
    )
    return int(conn.execute(query).scalar_one())


def first_step_starts(
    conn: Connection, run_ids: Collection[str], step_ids: Collection[str]
) -> dict[str, datetime]:
    """Per run, when the first of ``step_ids`` started (runs none of them started are left out)."""
    rows = conn.execute(
        sa.select(step_t.c.run_id, sa.func.min(step_t.c.started_at))
        .where(step_t.c.run_id.in_(run_ids), step_t.c.step_id.in_(step_ids))
        .group_by(step_t.c.run_id)
    )
    return {str(run_id): aware(at) for run_id, at in rows if at is not None}


def count_rows(conn: Connection, table: str) -> int:
    """Rows of ``table`` (raises the driver's error when there is no such table)."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(sa.table(table))).scalar_one())
