"""The store's dialect-specific SQL on SQLite (the embedded default): portable SQLAlchemy Core,
where the multi-write operations are several statements in the caller's transaction."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

from orchestration.errors import RunNotFoundError
from orchestration.names import DONE_STEP_STATUSES, LIVE_RUN_STATUSES
from orchestration.store.base import AnyRow, utcnow
from orchestration.store.db import autocommit, sql_engine
from orchestration.store.dialects.base import QueryComponents
from orchestration.store.states import RunState, StepStart, run_state
from orchestration.store.tables import outbox_t, run_t, step_t
from orchestration.store.transitions import mark_run_running, succeed_run


def _load_state_stmt() -> Any:
    """The run's columns and every record of it as one JSON array of ``[step_id, status, output]``."""
    steps = sa.func.json_group_array(
        sa.func.json_array(step_t.c.step_id, step_t.c.status, sa.func.json(step_t.c.output))
    )
    steps_json = (
        sa.select(sa.type_coerce(steps, sa.JSON())).where(step_t.c.run_id == run_t.c.run_id).scalar_subquery()
    )
    return sa.select(
        run_t.c.flow_name,
        run_t.c.flow_version,
        run_t.c.flow_def,
        run_t.c.status,
        run_t.c.payload,
        run_t.c.campaign,
        run_t.c.deadline_at,
        steps_json.label("steps"),
    ).where(run_t.c.run_id == sa.bindparam("run_id"))


def _finish_step_stmt(with_errors: bool) -> Any:
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
            step_t.c.status.notin_(DONE_STEP_STATUSES),
            ~cancelled,
        )
        .values(**values)
    )


class SqliteQueryComponents(QueryComponents):
    dialect = "sqlite"

    def insert(self, table: sa.Table) -> sqlite.Insert:
        return sqlite.insert(table)

    def insert_run(self, conn: Connection, values: dict[str, Any]) -> None:
        conn.execute(run_t.insert().values(**values))

    def load_state(self, conn: Connection, run_id: str) -> RunState:
        row = conn.execute(self.prepared("load_state", _load_state_stmt), {"run_id": run_id}).first()
        if row is None:
            raise RunNotFoundError(run_id)
        return run_state(run_id, row)

    def start_step(
        self, conn: Connection, run_id: str, step_id: str, agent: str, task_id: str | None = None
    ) -> tuple[RunState, StepStart | None]:
        state = self.load_state(conn, run_id)
        if state.status not in LIVE_RUN_STATUSES or (
            state.deadline_at is not None and utcnow() > state.deadline_at
        ):
            return state, None
        mark_run_running(conn, run_id)
        return state, self.begin_step(conn, run_id, step_id, agent, task_id)

    def finish_step(self, conn: Connection, params: dict[str, Any], *, ends_run: bool) -> bool:
        with_errors = "attempt_errors" in params
        stmt = self.prepared(f"finish_step_{with_errors}", lambda: _finish_step_stmt(with_errors))
        written = bool(conn.execute(stmt, params).rowcount)
        if written and ends_run:
            succeed_run(conn, params["rid"], params["now"])
        return written

    def record_step(self, conn: Connection, values: dict[str, Any], *, ends_run: bool) -> bool:
        stmt = (
            self.insert(step_t)
            .values(**values)
            .on_conflict_do_update(
                index_elements=["run_id", "step_id"],
                set_={k: values[k] for k in ("status", "output", "error", "finished_at", "updated_at")},
                where=step_t.c.status.notin_(DONE_STEP_STATUSES),
            )
        )
        written = bool(conn.execute(stmt).rowcount)
        if written and ends_run:
            succeed_run(conn, values["run_id"], values["updated_at"])
        return written

    def claim_outbox(self, conn: Connection, before: datetime, limit: int) -> list[AnyRow]:
        # SQLite has no row locks: a write that changes nothing takes the database's write lock for
        # the caller's transaction, so a second relay's claim waits for this one to commit and then
        # finds only what is still unpublished
        pending = self.pending_outbox(before, limit, outbox_t.c.id)
        stmt = (
            outbox_t.update()
            .where(outbox_t.c.id.in_(pending), outbox_t.c.published_at.is_(None))
            .values(published_at=None)
            .returning(
                outbox_t.c.id, outbox_t.c.run_id, outbox_t.c.publication, outbox_t.c.kind, outbox_t.c.resume
            )
        )
        return list(conn.execute(stmt))

    def step_writer(self, ends_run: bool, url: str | None = None) -> AbstractContextManager[Connection]:
        # the record and the run's end are two statements here: one transaction makes them one write
        return sql_engine(url).begin() if ends_run else autocommit(url)
