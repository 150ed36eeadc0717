"""The run repository: functions that take a ``Connection`` and write idempotently.

- A run is opened together with its event's idempotency key; the same key returns the same run.
- A step record is keyed by ``(run_id, step_id)``: a redelivered step updates its record.
- Terminal statuses are written with a conditional update, so one or many callers agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from psycopg.rows import namedtuple_row
from psycopg.types.json import Jsonb
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from orchestration.envelope import Envelope, RunMetadata
from orchestration.envelope import StepRecord as StepRecordModel
from orchestration.errors import RunNotFoundError
from orchestration.store.models import TERMINAL_RUN_STATUSES, IngestKey, Run, StepRecord

run_t = cast(sa.Table, Run.__table__)
step_t = cast(sa.Table, StepRecord.__table__)
key_t = cast(sa.Table, IngestKey.__table__)
LIVE = ("queued", "running")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _insert(conn: Connection, table: sa.Table) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


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
    conn.execute(
        run_t.insert().values(
            run_id=new.run_id,
            flow_name=new.flow_name,
            flow_version=new.flow_version,
            flow_def=new.flow_def,
            status="queued",
            mode=new.mode,
            payload=new.payload,
            event_id=new.event_id,
            campaign=new.campaign,
            orchestrator=new.orchestrator,
            extra=new.extra,
            created_at=now,
            updated_at=now,
            deadline_at=new.deadline_at,
        )
    )
    return new.run_id, False


@dataclass
class RunState:
    """What a step needs to know about its run, read in one transaction."""

    run_id: str
    flow_name: str
    flow_version: str
    flow_def: dict[str, Any]
    status: str
    payload: dict[str, Any]
    campaign: str | None
    deadline_at: datetime | None
    outputs: dict[str, Any]
    statuses: dict[str, str]

    def scope(self) -> dict[str, Any]:
        meta = {"run_id": self.run_id, "flow": self.flow_name, "campaign": self.campaign}
        return {"payload": self.payload, "steps": self.outputs, "run": meta}


_statements: dict[tuple[str, str], Any] = {}


def _prepared(conn: Connection, key: str, build: Callable[[Connection], Any]) -> Any:
    """Hot-path statements are built once per dialect with bind parameters: building a SQLAlchemy
    construct costs more CPU than the round trip it makes."""
    cache_key = (conn.dialect.name, key)
    stmt = _statements.get(cache_key)
    if stmt is None:
        stmt = _statements[cache_key] = build(conn)
    return stmt


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
    SELECT flow_name, flow_version, flow_def, status, payload, campaign, deadline_at,
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


@dataclass(frozen=True)
class StepStart:
    status: str
    attempts: int
    output: Any
    attempt_errors: list[dict[str, Any]]

    @property
    def already_done(self) -> bool:
        return self.status in ("succeeded", "skipped")


_START_COLUMNS = (step_t.c.status, step_t.c.attempts, step_t.c.output, step_t.c.attempt_errors)


def _begin_step_stmt(conn: Connection) -> Any:
    now = sa.bindparam("now", type_=sa.DateTime(timezone=True))
    stmt = _insert(conn, step_t).values(
        run_id=sa.bindparam("rid"),
        step_id=sa.bindparam("sid"),
        agent=sa.bindparam("agent"),
        status="running",
        attempts=1,
        started_at=now,
        updated_at=now,
    )
    return stmt.on_conflict_do_update(
        index_elements=["run_id", "step_id"],
        set_={
            "status": "running",
            "attempts": step_t.c.attempts + 1,
            "started_at": sa.func.coalesce(step_t.c.started_at, now),
            "finished_at": None,
            "updated_at": now,
        },
        where=step_t.c.status.notin_(("succeeded", "skipped")),
    ).returning(*_START_COLUMNS)


def begin_step(conn: Connection, run_id: str, step_id: str, agent: str | None) -> StepStart:
    """Mark the record ``running`` and count the attempt, unless it already succeeded or was skipped."""
    params = {"rid": run_id, "sid": step_id, "agent": agent, "now": utcnow()}
    row = conn.execute(_prepared(conn, "begin_step", _begin_step_stmt), params).first()
    if row is None:
        row = conn.execute(
            sa.select(*_START_COLUMNS).where(step_t.c.run_id == run_id, step_t.c.step_id == step_id)
        ).one()
    return StepStart(row.status, row.attempts, row.output, list(row.attempt_errors or []))


#: Hot-path SQL on Postgres runs on the driver connection (psycopg prepares it after a few uses):
#: SQLAlchemy's statement machinery costs more CPU than these round trips.
_START_STEP_PG = """
    WITH r AS (
        SELECT flow_name, flow_version, flow_def, status, payload, campaign, deadline_at
        FROM run WHERE run_id = %(rid)s
    ),
    live AS (
        SELECT 1 FROM r
        WHERE r.status IN ('queued', 'running') AND (r.deadline_at IS NULL OR r.deadline_at > %(now)s)
    ),
    started AS (
        UPDATE run SET status = 'running', started_at = %(now)s, updated_at = %(now)s
        WHERE run_id = %(rid)s AND status = 'queued' AND EXISTS (SELECT 1 FROM live)
    ),
    up AS (
        INSERT INTO step_record AS s (run_id, step_id, agent, status, attempts, started_at, updated_at)
        SELECT %(rid)s, %(sid)s, %(agent)s, 'running', 1, %(now)s, %(now)s FROM live
        ON CONFLICT (run_id, step_id) DO UPDATE SET
            status = 'running', attempts = s.attempts + 1,
            started_at = COALESCE(s.started_at, EXCLUDED.started_at),
            finished_at = NULL, updated_at = EXCLUDED.updated_at
        WHERE s.status NOT IN ('succeeded', 'skipped')
        RETURNING s.status, s.attempts, s.output, s.attempt_errors
    )
    SELECT r.*,
        (SELECT json_agg(json_build_array(step_id, status, output)) FROM step_record
         WHERE run_id = %(rid)s) AS steps,
        (SELECT json_build_array(status, attempts, output, attempt_errors) FROM up) AS mine
    FROM r
"""

_FINISH_STEP_PG = """
    UPDATE step_record SET status = %(status)s, output = %(output)s, error = %(error)s,
        updated_at = %(now)s, finished_at = %(finished)s{errors}
    WHERE run_id = %(rid)s AND step_id = %(sid)s AND status <> 'succeeded'
      AND NOT EXISTS (SELECT 1 FROM run WHERE run.run_id = %(rid)s AND run.status = 'cancelled')
"""
_FINISH_STEP_PG_PLAIN = _FINISH_STEP_PG.format(errors="")
_FINISH_STEP_PG_ERRORS = _FINISH_STEP_PG.format(errors=", attempt_errors = %(attempt_errors)s")


def _driver(conn: Connection) -> Any:
    """The psycopg connection under ``conn`` (in ``conn``'s transaction, or autocommit)."""
    return conn.connection.driver_connection


def start_step(conn: Connection, run_id: str, step_id: str, agent: str) -> tuple[RunState, StepStart | None]:
    """Read the run and begin the step in one statement (Postgres).

    The step is marked ``running`` (its attempt counted) and a queued run marked ``running`` only
    when the run is live and not past its deadline; then the returned ``StepStart`` is None and the
    caller's gate decides. A step that already succeeded or was skipped comes back as it is.
    Elsewhere (SQLite) this is :func:`load_state` followed by :func:`begin_step`.
    """
    if conn.dialect.name != "postgresql":
        state = load_state(conn, run_id)
        if state.status not in LIVE or (state.deadline_at is not None and utcnow() > state.deadline_at):
            return state, None
        mark_run_running(conn, run_id)
        return state, begin_step(conn, run_id, step_id, agent)
    params = {"rid": run_id, "sid": step_id, "agent": agent, "now": utcnow()}
    with _driver(conn).cursor(row_factory=namedtuple_row) as cur:
        row = cur.execute(_START_STEP_PG, params).fetchone()
    if row is None:
        raise RunNotFoundError(run_id)
    state = _state(run_id, row)
    if row.mine is not None:
        status, attempts, output, errors = row.mine
        return state, StepStart(status, attempts, output, list(errors or []))
    mine = state.statuses.get(step_id)
    if mine in ("succeeded", "skipped"):
        return state, StepStart(mine, 0, state.outputs.get(step_id), [])
    return state, None


def _finish_step_stmt(with_errors: bool) -> Callable[[Connection], Any]:
    def build(_conn: Connection) -> Any:
        values: dict[str, Any] = {
            "status": sa.bindparam("status"),
            "output": sa.bindparam("output", type_=step_t.c.output.type),
            "error": sa.bindparam("error", type_=step_t.c.error.type),
            "updated_at": sa.bindparam("now", type_=sa.DateTime(timezone=True)),
            "finished_at": sa.bindparam("finished", type_=sa.DateTime(timezone=True)),
        }
        if with_errors:
            values["attempt_errors"] = sa.bindparam("attempt_errors", type_=step_t.c.attempt_errors.type)
        cancelled = sa.exists().where(run_t.c.run_id == step_t.c.run_id, run_t.c.status == "cancelled")
        return (
            step_t.update()
            .where(
                step_t.c.run_id == sa.bindparam("rid"),
                step_t.c.step_id == sa.bindparam("sid"),
                step_t.c.status != "succeeded",
                ~cancelled,
            )
            .values(**values)
        )

    return build


def finish_step(
    conn: Connection,
    run_id: str,
    step_id: str,
    *,
    status: str,
    output: Any = None,
    error: dict[str, Any] | None = None,
    attempt_errors: list[dict[str, Any]] | None = None,
    ends_run: bool = False,
) -> bool:
    """Write the outcome of one attempt; False when nothing was written: the record had already
    succeeded, or the run was cancelled meanwhile (see :func:`discard_step`).

    ``ends_run``: when the record is written, the run ends ``succeeded`` too, atomically (one
    statement on Postgres; elsewhere the caller's transaction holds both).
    """
    now = utcnow()
    with_errors = attempt_errors is not None
    params: dict[str, Any] = {
        "rid": run_id,
        "sid": step_id,
        "status": status,
        "output": output,
        "error": error,
        "now": now,
        "finished": now if status in ("succeeded", "failed", "skipped") else None,
    }
    if with_errors:
        params["attempt_errors"] = attempt_errors
    if conn.dialect.name == "postgresql":
        for name in ("output", "error", "attempt_errors"):
            if params.get(name) is not None:
                params[name] = Jsonb(params[name])
        sql = _FINISH_STEP_PG_ERRORS if with_errors else _FINISH_STEP_PG_PLAIN
        return _write_pg(conn, sql, params, ends_run)
    key = "finish_step_errors" if with_errors else "finish_step"
    written = bool(conn.execute(_prepared(conn, key, _finish_step_stmt(with_errors)), params).rowcount)
    if written and ends_run:
        finish_run(conn, run_id, "succeeded")
    return written


_ENDS_RUN_PG = """
    WITH w AS ({write} RETURNING 1),
    fin AS (
        UPDATE run SET status = 'succeeded', finished_at = %(now)s, updated_at = %(now)s
        WHERE run_id = %(rid)s AND status IN ('queued', 'running') AND EXISTS (SELECT 1 FROM w)
    )
    SELECT count(*) FROM w
"""


def _write_pg(conn: Connection, sql: str, params: dict[str, Any], ends_run: bool) -> bool:
    """Run one record write on Postgres; with ``ends_run`` the run's success goes in the same statement."""
    with _driver(conn).cursor() as cur:
        if not ends_run:
            return bool(cur.execute(sql, params).rowcount)
        row = cur.execute(_ENDS_RUN_PG.format(write=sql), params).fetchone()
        return bool(row and row[0])


def discard_step(conn: Connection, run_id: str, step_id: str) -> None:
    """A step that finished after its run was cancelled: its result is discarded, not recorded."""
    conn.execute(
        step_t.update()
        .where(
            step_t.c.run_id == run_id,
            step_t.c.step_id == step_id,
            step_t.c.status.in_(("running", "pending")),
        )
        .values(
            status="skipped",
            output=None,
            error={
                "type": "Cancelled",
                "message": "the run was cancelled while this step ran; result discarded",
            },
            finished_at=utcnow(),
            updated_at=utcnow(),
        )
    )


def record_step(
    conn: Connection,
    run_id: str,
    step_id: str,
    *,
    agent: str | None,
    status: str,
    output: Any = None,
    error: dict[str, Any] | None = None,
    ends_run: bool = False,
) -> None:
    """Insert-or-update a whole record in one statement (joins, branches, skips); ``ends_run`` as in
    :func:`finish_step`."""
    now = utcnow()
    finished = now if status in ("succeeded", "failed", "skipped") else None
    values = {
        "run_id": run_id,
        "step_id": step_id,
        "agent": agent,
        "status": status,
        "attempts": 1 if status != "skipped" else 0,
        "output": output,
        "error": error,
        "started_at": now if status != "skipped" else None,
        "finished_at": finished,
        "updated_at": now,
    }
    if conn.dialect.name == "postgresql":
        for name in ("output", "error"):
            if values[name] is not None:
                values[name] = Jsonb(values[name])
        _write_pg(conn, _RECORD_STEP_PG, {**values, "rid": run_id, "now": now}, ends_run)
        return
    stmt = _insert(conn, step_t).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["run_id", "step_id"],
        set_={"status": status, "output": output, "error": error, "finished_at": finished, "updated_at": now},
        where=step_t.c.status.notin_(("succeeded", "skipped")),
    )
    if conn.execute(stmt).rowcount and ends_run:
        finish_run(conn, run_id, "succeeded")


_RECORD_STEP_PG = """
    INSERT INTO step_record AS s
        (run_id, step_id, agent, status, attempts, output, error, started_at, finished_at, updated_at)
    VALUES (%(run_id)s, %(step_id)s, %(agent)s, %(status)s, %(attempts)s, %(output)s, %(error)s,
            %(started_at)s, %(finished_at)s, %(updated_at)s)
    ON CONFLICT (run_id, step_id) DO UPDATE SET
        status = EXCLUDED.status, output = EXCLUDED.output, error = EXCLUDED.error,
        finished_at = EXCLUDED.finished_at, updated_at = EXCLUDED.updated_at
    WHERE s.status NOT IN ('succeeded', 'skipped')
"""


def skip_steps(conn: Connection, run_id: str, steps: list[tuple[str, str | None]]) -> None:
    """Record steps that will not run (an arm a branch did not take); existing records stay."""
    if not steps:
        return
    now = utcnow()
    rows = [
        {
            "run_id": run_id,
            "step_id": sid,
            "agent": agent,
            "status": "skipped",
            "attempts": 0,
            "finished_at": now,
            "updated_at": now,
        }
        for sid, agent in steps
    ]
    conn.execute(
        _insert(conn, step_t).values(rows).on_conflict_do_nothing(index_elements=["run_id", "step_id"])
    )


def finish_run(conn: Connection, run_id: str, status: str, error: dict[str, Any] | None = None) -> bool:
    """Move a live run to a terminal status; returns False when it was already terminal."""
    assert status in TERMINAL_RUN_STATUSES
    now = utcnow()
    result = conn.execute(
        run_t.update()
        .where(run_t.c.run_id == run_id, run_t.c.status.in_(LIVE))
        .values(status=status, error=error, finished_at=now, updated_at=now)
    )
    return bool(result.rowcount)


def fail_unfinished_steps(conn: Connection, run_id: str, error: dict[str, Any]) -> list[str]:
    """Mark records still ``running`` or ``pending`` as failed (a lost worker, a hard time limit)."""
    rows = conn.execute(
        step_t.update()
        .where(step_t.c.run_id == run_id, step_t.c.status.in_(("running", "pending")))
        .values(status="failed", error=error, finished_at=utcnow(), updated_at=utcnow())
        .returning(step_t.c.step_id)
    ).all()
    return [r.step_id for r in rows]


def first_failed_step(conn: Connection, run_id: str) -> tuple[str, dict[str, Any] | None] | None:
    row = conn.execute(
        sa.select(step_t.c.step_id, step_t.c.error)
        .where(step_t.c.run_id == run_id, step_t.c.status == "failed")
        .order_by(step_t.c.finished_at)
        .limit(1)
    ).first()
    return (row.step_id, row.error) if row else None


def run_status(conn: Connection, run_id: str) -> str:
    status = conn.execute(sa.select(run_t.c.status).where(run_t.c.run_id == run_id)).scalar()
    if status is None:
        raise RunNotFoundError(run_id)
    return str(status)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def get_envelope(conn: Connection, run_id: str) -> Envelope:
    run = conn.execute(sa.select(run_t).where(run_t.c.run_id == run_id)).first()
    if run is None:
        raise RunNotFoundError(run_id)
    steps = conn.execute(sa.select(step_t).where(step_t.c.run_id == run_id).order_by(step_t.c.id)).all()
    records = [
        StepRecordModel(
            step_id=s.step_id,
            agent=s.agent,
            status=s.status,
            attempts=s.attempts,
            started_at=_aware(s.started_at),
            finished_at=_aware(s.finished_at),
            output=s.output,
            error=s.error,
            attempt_errors=s.attempt_errors or [],
        )
        for s in steps
    ]
    meta = RunMetadata(
        event_id=run.event_id,
        campaign=run.campaign,
        orchestrator=run.orchestrator,
        flow_version=run.flow_version,
        mode=run.mode,
        created_at=_aware(run.created_at),
        started_at=_aware(run.started_at),
        finished_at=_aware(run.finished_at),
        deadline_at=_aware(run.deadline_at),
        redrives=run.redrives,
        error=run.error,
        payload=run.payload,
        extra=run.extra or {},
    )
    return Envelope(run_id=run.run_id, flow=run.flow_name, status=run.status, metadata=meta, records=records)


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    flow: str
    status: str
    campaign: str | None
    event_id: str | None
    created_at: datetime
    finished_at: datetime | None


def list_runs(
    conn: Connection,
    *,
    status: str | None = None,
    flow: str | None = None,
    campaign: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
) -> list[RunSummary]:
    query = (
        sa.select(
            run_t.c.run_id,
            run_t.c.flow_name,
            run_t.c.status,
            run_t.c.campaign,
            run_t.c.event_id,
            run_t.c.created_at,
            run_t.c.finished_at,
        )
        .order_by(run_t.c.created_at.desc())
        .limit(limit)
    )
    if status:
        query = query.where(run_t.c.status == status)
    if flow:
        query = query.where(run_t.c.flow_name == flow)
    if campaign:
        query = query.where(run_t.c.campaign == campaign)
    if since:
        query = query.where(run_t.c.created_at >= since)
    return [
        RunSummary(
            r.run_id,
            r.flow_name,
            r.status,
            r.campaign,
            r.event_id,
            _aware(r.created_at) or utcnow(),
            _aware(r.finished_at),
        )
        for r in conn.execute(query)
    ]
