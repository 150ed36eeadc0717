"""Run status transitions in portable SQL: start a queued run, end a live one (terminal once), read
the status. The dialect implementations build on these too."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestration.errors import RunNotFoundError
from orchestration.names import LIVE_RUN_STATUSES, OPEN_RUN_STATUSES, TERMINAL_RUN_STATUSES
from orchestration.store.base import utcnow
from orchestration.store.tables import run_t

#: Built once with bind parameters (hot path): building the construct costs more than its round trip.
_MARK_RUNNING = (
    run_t.update()
    .where(run_t.c.run_id == sa.bindparam("rid"), run_t.c.status == "queued")
    .values(status="running", started_at=sa.bindparam("now"), updated_at=sa.bindparam("now"))
)


def mark_run_running(conn: Connection, run_id: str) -> None:
    conn.execute(_MARK_RUNNING, {"rid": run_id, "now": utcnow()})


def finish_run(conn: Connection, run_id: str, status: str, error: dict[str, Any] | None = None) -> bool:
    """Move a live or waiting run to a terminal status; returns False when it was already terminal."""
    assert status in TERMINAL_RUN_STATUSES
    now = utcnow()
    result = conn.execute(
        run_t.update()
        .where(run_t.c.run_id == run_id, run_t.c.status.in_(OPEN_RUN_STATUSES))
        .values(status=status, error=error, finished_at=now, updated_at=now)
    )
    return bool(result.rowcount)


def succeed_run(conn: Connection, run_id: str, now: datetime | None = None) -> bool:
    """End a live run ``succeeded``, unless its deadline passed before ``now``: a run never ends
    ``succeeded`` after its deadline. Returns False when nothing changed."""
    now = now or utcnow()
    result = conn.execute(
        run_t.update()
        .where(
            run_t.c.run_id == run_id,
            run_t.c.status.in_(LIVE_RUN_STATUSES),
            sa.or_(run_t.c.deadline_at.is_(None), run_t.c.deadline_at >= now),
        )
        .values(status="succeeded", error=None, finished_at=now, updated_at=now)
    )
    return bool(result.rowcount)


def run_status(conn: Connection, run_id: str) -> str:
    status = conn.execute(sa.select(run_t.c.status).where(run_t.c.run_id == run_id)).scalar()
    if status is None:
        raise RunNotFoundError(run_id)
    return str(status)
