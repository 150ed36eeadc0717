"""Durable time in the store: timers, open waits and signals (tables in ``wait_models``).

Lock order, which keeps the poller and everything else free of deadlocks: the poller claims timers
first (``FOR UPDATE SKIP LOCKED``) and then locks their runs; everyone else locks the run first and
never waits for a timer row (closing a timer skips one a poller holds: that poller fires it into a
run that is no longer waiting for it, which changes nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestration.names import RunStatus
from orchestration.store.base import aware, utcnow
from orchestration.store.queries import queries
from orchestration.store.tables import run_t, signal_t, timer_t, wait_t

SLEEP = "sleep"
TIMEOUT = "timeout"


@dataclass(frozen=True)
class Timer:
    id: int
    run_id: str
    node_id: str
    kind: str
    due_at: datetime


@dataclass(frozen=True)
class Wait:
    id: int
    run_id: str
    node_id: str
    signal: str
    timeout_at: datetime | None


@dataclass(frozen=True)
class Signal:
    signal_id: str
    name: str
    data: Any
    created_at: datetime


# ------------------------------------------------------------------------------------------ timers
def add_timer(conn: Connection, run_id: str, node_id: str, kind: str, due_at: datetime) -> int:
    stmt = timer_t.insert().values(
        run_id=run_id, node_id=node_id, kind=kind, due_at=due_at, created_at=utcnow()
    )
    return int(conn.execute(stmt.returning(timer_t.c.id)).scalar_one())


def claim_due(conn: Connection, now: datetime, limit: int) -> list[Timer]:
    """Mark up to ``limit`` timers due at ``now`` fired, soonest first, and return them. On Postgres
    the rows are chosen ``FOR UPDATE SKIP LOCKED`` (a second poller takes others) and stay locked
    until the caller's transaction ends (a poller killed before its commit fired nothing). The
    choice is its own statement: as a subquery of the ``UPDATE`` the planner may run it again and
    lock (and fire) more than ``limit``. On SQLite the ``UPDATE`` takes the database's write lock
    for the transaction, and a second poller's finds the rows fired."""
    due = (
        conn.execute(
            sa.select(timer_t.c.id)
            .where(timer_t.c.fired_at.is_(None), timer_t.c.due_at <= now)
            .order_by(timer_t.c.due_at, timer_t.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        .scalars()
        .all()
    )
    if not due:
        return []
    rows = conn.execute(
        timer_t.update()
        .where(timer_t.c.id.in_(list(due)), timer_t.c.fired_at.is_(None))
        .values(fired_at=now)
        .returning(timer_t.c.id, timer_t.c.run_id, timer_t.c.node_id, timer_t.c.kind, timer_t.c.due_at)
    ).all()
    timers = [Timer(int(r.id), r.run_id, r.node_id, r.kind, aware(r.due_at) or now) for r in rows]
    return sorted(timers, key=lambda t: (t.run_id, t.id))


def close_timers(conn: Connection, run_id: str, node_id: str | None = None) -> int:
    """Timers of the run (of one node) that have not fired will not: marked fired now. One that a
    poller holds is skipped (it fires into a run that no longer waits for it)."""
    pending = sa.select(timer_t.c.id).where(timer_t.c.run_id == run_id, timer_t.c.fired_at.is_(None))
    if node_id is not None:
        pending = pending.where(timer_t.c.node_id == node_id)
    ids = list(conn.execute(pending.with_for_update(skip_locked=True)).scalars())
    if not ids:
        return 0
    update = timer_t.update().where(timer_t.c.id.in_(ids), timer_t.c.fired_at.is_(None))
    return int(conn.execute(update.values(fired_at=utcnow())).rowcount)


def due_backlog(conn: Connection, now: datetime) -> tuple[int, datetime | None]:
    """How many timers are due and not fired, and the oldest due time among them."""
    row = conn.execute(
        sa.select(sa.func.count(), sa.func.min(timer_t.c.due_at)).where(
            timer_t.c.fired_at.is_(None), timer_t.c.due_at <= now
        )
    ).one()
    return int(row[0]), aware(row[1])


# ------------------------------------------------------------------------------------------- waits
def open_wait(
    conn: Connection,
    run_id: str,
    node_id: str,
    signal: str,
    *,
    correlation: str | None = None,
    timeout_at: datetime | None = None,
) -> int:
    stmt = wait_t.insert().values(
        run_id=run_id,
        node_id=node_id,
        signal=signal,
        correlation=correlation,
        status="open",
        timeout_at=timeout_at,
        created_at=utcnow(),
    )
    return int(conn.execute(stmt.returning(wait_t.c.id)).scalar_one())


def _wait(row: Any) -> Wait:
    return Wait(int(row.id), row.run_id, row.node_id, row.signal, aware(row.timeout_at))


_WAIT_COLUMNS = (wait_t.c.id, wait_t.c.run_id, wait_t.c.node_id, wait_t.c.signal, wait_t.c.timeout_at)


def open_wait_of(
    conn: Connection, run_id: str, *, signal: str | None = None, node_id: str | None = None
) -> Wait | None:
    """The run's open wait (for ``signal``, or of ``node_id``), if it has one."""
    query = sa.select(*_WAIT_COLUMNS).where(wait_t.c.run_id == run_id, wait_t.c.status == "open")
    if signal is not None:
        query = query.where(wait_t.c.signal == signal)
    if node_id is not None:
        query = query.where(wait_t.c.node_id == node_id)
    row = conn.execute(query.order_by(wait_t.c.id).limit(1)).first()
    return _wait(row) if row is not None else None


def close_wait(conn: Connection, wait_id: int, status: str) -> bool:
    """End an open wait (``signalled``, ``timed_out``, ``closed``); False when it was not open."""
    result = conn.execute(
        wait_t.update()
        .where(wait_t.c.id == wait_id, wait_t.c.status == "open")
        .values(status=status, closed_at=utcnow())
    )
    return bool(result.rowcount)


def close_run_waits(conn: Connection, run_id: str) -> None:
    """A run that ends (cancelled, failed) waits no more: its open waits close, its timers will not fire."""
    conn.execute(
        wait_t.update()
        .where(wait_t.c.run_id == run_id, wait_t.c.status == "open")
        .values(status="closed", closed_at=utcnow())
    )
    close_timers(conn, run_id)


def correlated_runs(conn: Connection, signal: str, correlation: str, limit: int = 100) -> list[str]:
    """Runs with an open wait for ``signal`` whose correlation value is ``correlation``."""
    query = (
        sa.select(wait_t.c.run_id)
        .where(wait_t.c.status == "open", wait_t.c.signal == signal, wait_t.c.correlation == correlation)
        .order_by(wait_t.c.id)
        .limit(limit)
    )
    return list(dict.fromkeys(conn.execute(query).scalars()))


# ----------------------------------------------------------------------------------------- signals
def add_signal(conn: Connection, run_id: str, signal_id: str, name: str, data: Any) -> bool:
    """Keep a signal; False when the run already has one with this ``signal_id`` (one signal)."""
    stmt = (
        queries(conn)
        .insert(signal_t)
        .values(run_id=run_id, signal_id=signal_id, name=name, data=data, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["run_id", "signal_id"])
        .returning(signal_t.c.id)
    )
    return conn.execute(stmt).first() is not None


def has_signal(conn: Connection, run_id: str, signal_id: str) -> bool:
    query = sa.select(signal_t.c.id).where(signal_t.c.run_id == run_id, signal_t.c.signal_id == signal_id)
    return conn.execute(query).first() is not None


def runs_signalled(conn: Connection, signal_id: str, limit: int = 1000) -> list[str]:
    """Runs that already received a signal with this id (an event delivered again)."""
    query = sa.select(signal_t.c.run_id).where(signal_t.c.signal_id == signal_id).order_by(signal_t.c.id)
    return list(conn.execute(query.limit(limit)).scalars())


def consume_signal(conn: Connection, run_id: str, name: str, node_id: str) -> Signal | None:
    """The oldest kept signal ``name`` of the run that no wait took yet, now taken by ``node_id``
    (the caller holds the run's row lock)."""
    row = conn.execute(
        sa.select(
            signal_t.c.id, signal_t.c.signal_id, signal_t.c.name, signal_t.c.data, signal_t.c.created_at
        )
        .where(signal_t.c.run_id == run_id, signal_t.c.name == name, signal_t.c.consumed_at.is_(None))
        .order_by(signal_t.c.id)
        .limit(1)
    ).first()
    if row is None:
        return None
    conn.execute(
        signal_t.update().where(signal_t.c.id == row.id).values(consumed_at=utcnow(), consumed_by=node_id)
    )
    return Signal(row.signal_id, row.name, row.data, aware(row.created_at) or utcnow())


def signals_of(conn: Connection, run_id: str) -> list[dict[str, Any]]:
    """Every signal kept for the run, oldest first."""
    query = sa.select(signal_t).where(signal_t.c.run_id == run_id).order_by(signal_t.c.id)
    return [dict(r._mapping) for r in conn.execute(query)]


# --------------------------------------------------------------------------------------- run state
def set_waiting(conn: Connection, run_id: str) -> bool:
    """A running run parks (the caller holds its row lock)."""
    result = conn.execute(
        run_t.update()
        .where(run_t.c.run_id == run_id, run_t.c.status.in_((RunStatus.RUNNING, RunStatus.QUEUED)))
        .values(status=RunStatus.WAITING, updated_at=utcnow())
    )
    return bool(result.rowcount)


def set_awake(conn: Connection, run_id: str) -> bool:
    """A waiting run goes on (the caller holds its row lock)."""
    result = conn.execute(
        run_t.update()
        .where(run_t.c.run_id == run_id, run_t.c.status == RunStatus.WAITING)
        .values(status=RunStatus.RUNNING, updated_at=utcnow())
    )
    return bool(result.rowcount)


def run_publication(conn: Connection, run_id: str) -> int:
    return int(conn.execute(sa.select(run_t.c.publication).where(run_t.c.run_id == run_id)).scalar_one())


def current_wait(conn: Connection, run_id: str) -> dict[str, Any] | None:
    """What a waiting run waits for: ``{"node_id", "kind", "signal", "until"}`` (the envelope's
    ``metadata.wait``), or None. A wait before a sleep: a run parks at one node at a time."""
    wait = open_wait_of(conn, run_id)
    if wait is not None:
        return {"node_id": wait.node_id, "kind": "wait", "signal": wait.signal, "until": wait.timeout_at}
    row = conn.execute(
        sa.select(timer_t.c.node_id, timer_t.c.due_at)
        .where(timer_t.c.run_id == run_id, timer_t.c.fired_at.is_(None), timer_t.c.kind == SLEEP)
        .order_by(timer_t.c.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    due = aware(row.due_at)
    return {
        "node_id": row.node_id,
        "kind": "sleep",
        "signal": None,
        "until": due.isoformat() if due else None,
    }
