"""Runs: open one idempotently, read its state, move it to running or a terminal status."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from psycopg.rows import namedtuple_row
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from orchestration.errors import RunNotFoundError
from orchestration.names import LIVE_RUN_STATUSES, TERMINAL_RUN_STATUSES
from orchestration.store.base import (
    _aware,
    _driver,
    _insert,
    _jsonb,
    _prepared,
    key_t,
    run_t,
    step_t,
    utcnow,
)


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
    extra: dict[str, Any] = field(default_factory=dict)


def open_run(conn: Connection, new: NewRun) -> tuple[str, bool]:
    """Insert the run (status ``queued``); returns ``(run_id, duplicate)``.

    With an event id, the idempotency key is written in the same transaction: a second call with
    the same event id (even concurrently) returns the first run's id and ``duplicate=True``.
    """
    if new.event_id is not None:
        stmt = (
            _insert(conn, key_t)
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
    values: dict[str, Any] = {
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
    }
    if conn.dialect.name == "postgresql":  # on the driver: building the SQLAlchemy insert costs more
        with _driver(conn).cursor() as cur:
            cur.execute(_INSERT_RUN_PG, _jsonb(values, "flow_def", "payload", "extra"))
    else:
        conn.execute(run_t.insert().values(**values))
    return new.run_id, False


_INSERT_RUN_PG = """
    INSERT INTO run (run_id, flow_name, flow_version, flow_def, status, mode, payload, event_id,
        campaign, orchestrator, extra, created_at, updated_at, deadline_at)
    VALUES (%(run_id)s, %(flow_name)s, %(flow_version)s, %(flow_def)s, %(status)s, %(mode)s,
        %(payload)s, %(event_id)s, %(campaign)s, %(orchestrator)s, %(extra)s, %(created_at)s,
        %(updated_at)s, %(deadline_at)s)
"""


@dataclass
class RunState:
    """What a step needs to know about its run, read in one transaction."""

    run_id: str
    flow_name: str
    flow_version: str
    #: The run's flow snapshot; on Postgres its JSON text, which a step parses only when its
    #: process has not seen that exact text before (:func:`orchestration.engine.context.flow_of`).
    flow_def: dict[str, Any] | str
    status: str
    payload: dict[str, Any]
    campaign: str | None
    deadline_at: datetime | None
    outputs: dict[str, Any]
    statuses: dict[str, str]

    def scope(self) -> dict[str, Any]:
        meta = {"run_id": self.run_id, "flow": self.flow_name, "campaign": self.campaign}
        return {"payload": self.payload, "steps": self.outputs, "run": meta}


def _steps_json(conn: Connection) -> sa.ScalarSelect[Any]:
    """Every record of the run as one JSON array of ``[step_id, status, output]`` (one round trip)."""
    if conn.dialect.name == "postgresql":
        agg = sa.func.json_agg(sa.func.json_build_array(step_t.c.step_id, step_t.c.status, step_t.c.output))
        kind: Any = postgresql.JSON()
    else:
        agg = sa.func.json_group_array(
            sa.func.json_array(step_t.c.step_id, step_t.c.status, sa.func.json(step_t.c.output))
        )
        kind = sa.JSON()
    return sa.select(sa.type_coerce(agg, kind)).where(step_t.c.run_id == run_t.c.run_id).scalar_subquery()


def _load_state_stmt(conn: Connection) -> Any:
    return sa.select(
        run_t.c.flow_name,
        run_t.c.flow_version,
        run_t.c.flow_def,
        run_t.c.status,
        run_t.c.payload,
        run_t.c.campaign,
        run_t.c.deadline_at,
        _steps_json(conn).label("steps"),
    ).where(run_t.c.run_id == sa.bindparam("run_id"))


_LOAD_STATE_PG = """
    SELECT flow_name, flow_version, flow_def::text AS flow_def, status, payload, campaign, deadline_at,
        (SELECT json_agg(json_build_array(step_id, status, output)) FROM step_record
         WHERE run_id = %(rid)s) AS steps
    FROM run WHERE run_id = %(rid)s
"""


def load_state(conn: Connection, run_id: str) -> RunState:
    """The run and the status and output of each of its steps, in one query."""
    if conn.dialect.name == "postgresql":
        with _driver(conn).cursor(row_factory=namedtuple_row) as cur:
            row = cur.execute(_LOAD_STATE_PG, {"rid": run_id}).fetchone()
    else:
        row = conn.execute(_prepared(conn, "load_state", _load_state_stmt), {"run_id": run_id}).first()
    if row is None:
        raise RunNotFoundError(run_id)
    return _state(run_id, row)


def _state(run_id: str, row: Any) -> RunState:
    """A RunState from a row of the run's columns plus ``steps``: ``[[step_id, status, output], ...]``."""
    steps = [s for s in (row.steps or []) if s is not None]
    return RunState(
        run_id=run_id,
        flow_name=row.flow_name,
        flow_version=row.flow_version,
        flow_def=row.flow_def,
        status=row.status,
        payload=row.payload,
        campaign=row.campaign,
        deadline_at=_aware(row.deadline_at),
        outputs={sid: output for sid, status, output in steps if status == "succeeded"},
        statuses={sid: status for sid, status, _output in steps},
    )


def _mark_running_stmt(_conn: Connection) -> Any:
    return (
        run_t.update()
        .where(run_t.c.run_id == sa.bindparam("rid"), run_t.c.status == "queued")
        .values(status="running", started_at=sa.bindparam("now"), updated_at=sa.bindparam("now"))
    )


def mark_run_running(conn: Connection, run_id: str) -> None:
    conn.execute(_prepared(conn, "mark_running", _mark_running_stmt), {"rid": run_id, "now": utcnow()})


def finish_run(conn: Connection, run_id: str, status: str, error: dict[str, Any] | None = None) -> bool:
    """Move a live run to a terminal status; returns False when it was already terminal."""
    assert status in TERMINAL_RUN_STATUSES
    now = utcnow()
    result = conn.execute(
        run_t.update()
        .where(run_t.c.run_id == run_id, run_t.c.status.in_(LIVE_RUN_STATUSES))
        .values(status=status, error=error, finished_at=now, updated_at=now)
    )
    return bool(result.rowcount)


def run_status(conn: Connection, run_id: str) -> str:
    status = conn.execute(sa.select(run_t.c.status).where(run_t.c.run_id == run_id)).scalar()
    if status is None:
        raise RunNotFoundError(run_id)
    return str(status)
