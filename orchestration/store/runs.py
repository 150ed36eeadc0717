"""Runs: open one idempotently, read its state, reopen a failed one for a retry; the status
transitions are in ``transitions``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestration.store.base import AnyRow, utcnow
from orchestration.store.queries import queries
from orchestration.store.states import RunState
from orchestration.store.tables import key_t, run_t, step_t


@dataclass(frozen=True)
class NewRun:
    run_id: str
    flow_name: str
    flow_version: str
    flow_def: dict[str, Any]
    payload: dict[str, Any]
    mode: str = "async"
    event_id: str | None = None
    campaign: str | None = None
    orchestrator: str | None = None
    deadline_at: datetime | None = None
    #: 0-9, higher first (``orchestration.engine.priority``).
    priority: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def open_run(conn: Connection, new: NewRun) -> tuple[str, bool]:
    """Insert the run (status ``queued``); returns ``(run_id, duplicate)``.

    With an event id, the idempotency key is written in the same transaction: a second call with
    the same event id (even concurrently) returns the first run's id and ``duplicate=True``. A run
    opened for the workers (``mode`` async) is at its publication 1, whose outbox row the caller
    adds in the same transaction (``outbox.add``).
    """
    sql = queries(conn)
    if new.event_id is not None:
        stmt = (
            sql.insert(key_t)
            .values(event_id=new.event_id, run_id=new.run_id, created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(key_t.c.run_id)
        )
        if conn.execute(stmt).first() is None:
            existing = conn.execute(
                sa.select(key_t.c.run_id).where(key_t.c.event_id == new.event_id)
            ).scalar_one()
            return existing, True
    now = utcnow()
    sql.insert_run(
        conn,
        {
            "run_id": new.run_id,
            "flow_name": new.flow_name,
            "flow_version": new.flow_version,
            "flow_def": new.flow_def,
            "status": "queued",
            "mode": new.mode,
            "payload": new.payload,
            "event_id": new.event_id,
            "campaign": new.campaign,
            "orchestrator": new.orchestrator,
            "extra": new.extra,
            "created_at": now,
            "updated_at": now,
            "deadline_at": new.deadline_at,
            "priority": new.priority,
            "publication": 1 if new.mode == "async" else 0,
        },
    )
    return new.run_id, False


def load_state(conn: Connection, run_id: str) -> RunState:
    """The run and the status and output of each of its steps, in one query."""
    return queries(conn).load_state(conn, run_id)


def lock_run(conn: Connection, run_id: str) -> AnyRow | None:
    """``status``, ``flow_def``, ``payload`` and ``priority`` of the run, locked for this transaction."""
    return conn.execute(
        sa.select(run_t.c.status, run_t.c.flow_def, run_t.c.payload, run_t.c.priority)
        .where(run_t.c.run_id == run_id)
        .with_for_update()
    ).first()


def reopen_run(
    conn: Connection,
    run_id: str,
    payload: dict[str, Any] | None = None,
    *,
    deadline_at: datetime | None = None,
) -> None:
    """Set a failed run back to ``running`` (one more re-drive) with its unfinished and failed
    records ``pending``, each with a fresh budget of tries (``retry_base``); a new ``payload``
    replaces the stored one, ``deadline_at`` is the run's new deadline (None: none)."""
    conn.execute(
        step_t.update()
        .where(step_t.c.run_id == run_id, step_t.c.status.in_(("failed", "running", "pending")))
        .values(status="pending", finished_at=None, note=None, retry_base=step_t.c.attempts)
    )
    values: dict[str, Any] = {} if payload is None else {"payload": payload}
    conn.execute(
        run_t.update()
        .where(run_t.c.run_id == run_id)
        .values(
            status="running",
            error=None,
            finished_at=None,
            redrives=run_t.c.redrives + 1,
            updated_at=utcnow(),
            deadline_at=deadline_at,
            **values,
        )
    )
