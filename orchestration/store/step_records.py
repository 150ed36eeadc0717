"""Step records, keyed by ``(run_id, step_id)``: a redelivered step updates its record, a succeeded
record is never overwritten, and the last write of a run can end it in the same statement."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from psycopg.rows import namedtuple_row
from sqlalchemy.engine import Connection

from orchestration.errors import RunNotFoundError
from orchestration.names import (
    DONE_STEP_STATUSES,
    FINISHED_STEP_STATUSES,
    LIVE_RUN_STATUSES,
    UNFINISHED_STEP_STATUSES,
)
from orchestration.step_error import StepError
from orchestration.store.base import _driver, _insert, _jsonb, _prepared, run_t, step_t, utcnow
from orchestration.store.runs import RunState, _state, finish_run, load_state, mark_run_running


@dataclass(frozen=True)
class StepStart:
    status: str
    attempts: int
    output: Any
    attempt_errors: list[dict[str, Any]]

    @property
    def already_done(self) -> bool:
        return self.status in DONE_STEP_STATUSES


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
        where=step_t.c.status.notin_(DONE_STEP_STATUSES),
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
        SELECT flow_name, flow_version, flow_def::text AS flow_def, status, payload, campaign, deadline_at
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
        up.status AS my_status, up.attempts AS my_attempts, up.output AS my_output,
        up.attempt_errors AS my_errors
    FROM r LEFT JOIN up ON true
"""

_FINISH_STEP_PG = """
    UPDATE step_record SET status = %(status)s, output = %(output)s, error = %(error)s,
        updated_at = %(now)s, finished_at = %(finished)s{errors}
    WHERE run_id = %(rid)s AND step_id = %(sid)s AND status <> 'succeeded'
      AND NOT EXISTS (SELECT 1 FROM run WHERE run.run_id = %(rid)s AND run.status = 'cancelled')
"""
_FINISH_STEP_PG_PLAIN = _FINISH_STEP_PG.format(errors="")
_FINISH_STEP_PG_ERRORS = _FINISH_STEP_PG.format(errors=", attempt_errors = %(attempt_errors)s")


def start_step(conn: Connection, run_id: str, step_id: str, agent: str) -> tuple[RunState, StepStart | None]:
    """Read the run and begin the step in one statement (Postgres).

    The step is marked ``running`` (its attempt counted) and a queued run marked ``running`` only
    when the run is live and not past its deadline; then the returned ``StepStart`` is None and the
    caller's gate decides. A step that already succeeded or was skipped comes back as it is.
    Elsewhere (SQLite) this is :func:`load_state` followed by :func:`begin_step`.
    """
    if conn.dialect.name != "postgresql":
        state = load_state(conn, run_id)
        if state.status not in LIVE_RUN_STATUSES or (
            state.deadline_at is not None and utcnow() > state.deadline_at
        ):
            return state, None
        mark_run_running(conn, run_id)
        return state, begin_step(conn, run_id, step_id, agent)
    params = {"rid": run_id, "sid": step_id, "agent": agent, "now": utcnow()}
    with _driver(conn).cursor(row_factory=namedtuple_row) as cur:
        row = cur.execute(_START_STEP_PG, params).fetchone()
    if row is None:
        raise RunNotFoundError(run_id)
    state = _state(run_id, row)
    if row.my_status is not None:
        return state, StepStart(row.my_status, row.my_attempts, row.my_output, list(row.my_errors or []))
    mine = state.statuses.get(step_id)
    if mine in DONE_STEP_STATUSES:
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
        "finished": now if status in FINISHED_STEP_STATUSES else None,
    }
    if with_errors:
        params["attempt_errors"] = attempt_errors
    if conn.dialect.name == "postgresql":
        sql = _FINISH_STEP_PG_ERRORS if with_errors else _FINISH_STEP_PG_PLAIN
        return _write_pg(conn, sql, _jsonb(params, "output", "error", "attempt_errors"), ends_run)
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
            step_t.c.status.in_(UNFINISHED_STEP_STATUSES),
        )
        .values(
            status="skipped",
            output=None,
            error=StepError.result_discarded().as_dict(),
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
    finished = now if status in FINISHED_STEP_STATUSES else None
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
        params = _jsonb({**values, "rid": run_id, "now": now}, "output", "error")
        _write_pg(conn, _RECORD_STEP_PG, params, ends_run)
        return
    stmt = _insert(conn, step_t).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["run_id", "step_id"],
        set_={"status": status, "output": output, "error": error, "finished_at": finished, "updated_at": now},
        where=step_t.c.status.notin_(DONE_STEP_STATUSES),
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


def fail_unfinished_steps(conn: Connection, run_id: str, error: dict[str, Any]) -> list[str]:
    """Mark records still ``running`` or ``pending`` as failed (a lost worker, a hard time limit)."""
    rows = conn.execute(
        step_t.update()
        .where(step_t.c.run_id == run_id, step_t.c.status.in_(UNFINISHED_STEP_STATUSES))
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
