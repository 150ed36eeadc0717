"""The store's dialect-specific SQL on Postgres.

Hot-path SQL runs on the psycopg connection under the SQLAlchemy one (psycopg prepares it after a few
uses): SQLAlchemy's statement machinery costs more CPU than these round trips. Reading the run and
beginning a step is one statement, and so is writing the last record together with the run's end.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from psycopg.rows import namedtuple_row
from psycopg.types.json import Jsonb
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from orchestration.errors import RunNotFoundError
from orchestration.names import DONE_STEP_STATUSES
from orchestration.store.base import AnyRow, utcnow
from orchestration.store.db import autocommit
from orchestration.store.dialects.base import QueryComponents
from orchestration.store.states import RunState, StepStart, run_state
from orchestration.store.tables import step_t


def _driver(conn: Connection) -> Any:
    """The psycopg connection under ``conn`` (in ``conn``'s transaction, or autocommit)."""
    return conn.connection.driver_connection


def _jsonb(params: dict[str, Any], *names: str) -> dict[str, Any]:
    """``params`` for a statement on the driver, with the named JSON values wrapped for psycopg
    (``None`` stays SQL NULL)."""
    return {**params, **{name: Jsonb(params[name]) for name in names if params.get(name) is not None}}


_INSERT_RUN = """
    INSERT INTO run (run_id, flow_name, flow_version, flow_def, status, mode, payload, event_id,
        campaign, orchestrator, extra, created_at, updated_at, deadline_at, publication, priority)
    VALUES (%(run_id)s, %(flow_name)s, %(flow_version)s, %(flow_def)s, %(status)s, %(mode)s,
        %(payload)s, %(event_id)s, %(campaign)s, %(orchestrator)s, %(extra)s, %(created_at)s,
        %(updated_at)s, %(deadline_at)s, %(publication)s, %(priority)s)
"""

_LOAD_STATE = """
    SELECT flow_name, flow_version, flow_def::text AS flow_def, status, payload, campaign, deadline_at,
        (SELECT json_agg(json_build_array(step_id, status, output)) FROM step_record
         WHERE run_id = %(rid)s) AS steps
    FROM run WHERE run_id = %(rid)s
"""

_START_STEP = """
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
        INSERT INTO step_record AS s
            (run_id, step_id, agent, status, attempts, started_at, updated_at, tries)
        SELECT %(rid)s, %(sid)s, %(agent)s, 'running', 1, %(now)s, %(now)s, jsonb_build_array(
            jsonb_build_object('attempt', 1, 'started_at', %(now)s::timestamptz, 'task_id', %(tid)s::text))
        FROM live
        ON CONFLICT (run_id, step_id) DO UPDATE SET
            status = 'running', attempts = s.attempts + 1,
            started_at = COALESCE(s.started_at, EXCLUDED.started_at),
            tries = COALESCE(s.tries, '[]'::jsonb) || jsonb_build_array(jsonb_build_object(
                'attempt', s.attempts + 1, 'started_at', EXCLUDED.updated_at, 'task_id', %(tid)s::text)),
            finished_at = NULL, updated_at = EXCLUDED.updated_at
        WHERE s.status NOT IN ('succeeded', 'skipped')
        RETURNING s.status, s.attempts, s.output, s.attempt_errors, s.retry_base, s.input
    )
    SELECT r.*,
        (SELECT json_agg(json_build_array(step_id, status, output)) FROM step_record
         WHERE run_id = %(rid)s) AS steps,
        up.status AS my_status, up.attempts AS my_attempts, up.output AS my_output,
        up.attempt_errors AS my_errors, up.retry_base AS my_retry_base, up.input AS my_input
    FROM r LEFT JOIN up ON true
"""

_FINISH_STEP = """
    UPDATE step_record SET status = %(status)s, output = %(output)s, error = %(error)s,
        updated_at = %(now)s, finished_at = %(finished)s{errors}
    WHERE run_id = %(rid)s AND step_id = %(sid)s AND status NOT IN ('succeeded', 'skipped')
      AND NOT EXISTS (SELECT 1 FROM run WHERE run.run_id = %(rid)s AND run.status = 'cancelled')
"""
_FINISH_STEP_PLAIN = _FINISH_STEP.format(errors="")
_FINISH_STEP_ERRORS = _FINISH_STEP.format(errors=", attempt_errors = %(attempt_errors)s")

_KEEP_INPUT = "UPDATE step_record SET input = %(input)s WHERE run_id = %(rid)s AND step_id = %(sid)s"

_RECORD_STEP = """
    INSERT INTO step_record AS s
        (run_id, step_id, agent, status, attempts, output, error, started_at, finished_at, updated_at)
    VALUES (%(run_id)s, %(step_id)s, %(agent)s, %(status)s, %(attempts)s, %(output)s, %(error)s,
            %(started_at)s, %(finished_at)s, %(updated_at)s)
    ON CONFLICT (run_id, step_id) DO UPDATE SET
        status = EXCLUDED.status, output = EXCLUDED.output, error = EXCLUDED.error,
        finished_at = EXCLUDED.finished_at, updated_at = EXCLUDED.updated_at
    WHERE s.status NOT IN ('succeeded', 'skipped')
"""

#: A record write (``{write}``) that also ends the run ``succeeded`` when it wrote a row.
_ENDS_RUN = """
    WITH w AS ({write} RETURNING 1),
    fin AS (
        UPDATE run SET status = 'succeeded', finished_at = %(now)s, updated_at = %(now)s
        WHERE run_id = %(rid)s AND status IN ('queued', 'running') AND EXISTS (SELECT 1 FROM w)
          AND (deadline_at IS NULL OR deadline_at >= %(now)s)
    )
    SELECT count(*) FROM w
"""


class PostgresQueryComponents(QueryComponents):
    dialect = "postgresql"

    def insert(self, table: sa.Table) -> postgresql.Insert:
        return postgresql.insert(table)

    def insert_run(self, conn: Connection, values: dict[str, Any]) -> None:
        with _driver(conn).cursor() as cur:
            cur.execute(_INSERT_RUN, _jsonb(values, "flow_def", "payload", "extra"))

    def load_state(self, conn: Connection, run_id: str) -> RunState:
        with _driver(conn).cursor(row_factory=namedtuple_row) as cur:
            row = cur.execute(_LOAD_STATE, {"rid": run_id}).fetchone()
        if row is None:
            raise RunNotFoundError(run_id)
        return run_state(run_id, row)

    def start_step(
        self, conn: Connection, run_id: str, step_id: str, agent: str, task_id: str | None = None
    ) -> tuple[RunState, StepStart | None]:
        params = {"rid": run_id, "sid": step_id, "agent": agent, "now": utcnow(), "tid": task_id}
        with _driver(conn).cursor(row_factory=namedtuple_row) as cur:
            row = cur.execute(_START_STEP, params).fetchone()
        if row is None:
            raise RunNotFoundError(run_id)
        state = run_state(run_id, row)
        if row.my_status is not None:
            return state, StepStart(
                row.my_status,
                row.my_attempts,
                row.my_output,
                list(row.my_errors or []),
                row.my_retry_base,
                row.my_input,
            )
        mine = state.statuses.get(step_id)
        if mine in DONE_STEP_STATUSES:
            return state, StepStart(mine, 0, state.outputs.get(step_id), [])
        return state, None

    def _try(self, attempt: Any, now: Any) -> Any:
        tid = sa.cast(sa.bindparam("tid", type_=sa.String), sa.Text)
        return sa.func.jsonb_build_object("attempt", attempt, "started_at", now, "task_id", tid)

    def _first_try(self, now: Any) -> Any:
        return sa.func.jsonb_build_array(self._try(1, now))

    def _next_try(self, now: Any) -> Any:
        tries = sa.func.coalesce(step_t.c.tries, sa.cast(sa.literal("[]"), postgresql.JSONB))
        return tries.op("||")(sa.func.jsonb_build_array(self._try(step_t.c.attempts + 1, now)))

    def finish_step(self, conn: Connection, params: dict[str, Any], *, ends_run: bool) -> bool:
        sql = _FINISH_STEP_ERRORS if "attempt_errors" in params else _FINISH_STEP_PLAIN
        return _write(conn, sql, _jsonb(params, "output", "error", "attempt_errors"), ends_run)

    def keep_input(self, conn: Connection, run_id: str, step_id: str, value: Any) -> None:
        params = _jsonb({"rid": run_id, "sid": step_id, "input": value}, "input")
        with _driver(conn).cursor() as cur:
            cur.execute(_KEEP_INPUT, params)

    def record_step(self, conn: Connection, values: dict[str, Any], *, ends_run: bool) -> bool:
        params = _jsonb({**values, "rid": values["run_id"], "now": values["updated_at"]}, "output", "error")
        return _write(conn, _RECORD_STEP, params, ends_run)

    def claim_outbox(self, conn: Connection, before: datetime, limit: int) -> list[AnyRow]:
        # the rows stay locked until the caller's transaction ends; a second relay skips them
        return list(conn.execute(self.pending_outbox(before, limit).with_for_update(skip_locked=True)))

    def step_writer(self, ends_run: bool, url: str | None = None) -> AbstractContextManager[Connection]:
        return autocommit(url)  # a write that ends the run is one statement: no transaction needed


def _write(conn: Connection, sql: str, params: dict[str, Any], ends_run: bool) -> bool:
    """Run one record write; with ``ends_run`` the run's success goes in the same statement."""
    with _driver(conn).cursor() as cur:
        if not ends_run:
            return bool(cur.execute(sql, params).rowcount)
        row = cur.execute(_ENDS_RUN.format(write=sql), params).fetchone()
        return bool(row and row[0])
