"""The interface of the dialect-specific SQL of the store.

Most of the store is portable SQLAlchemy Core. What differs per database lives behind
:class:`QueryComponents`: the upsert construct, and the hot-path run and step writes, which on
Postgres go to the driver connection as single statements (a read and a write, or two writes, in
one round trip) and elsewhere are composed of portable statements in the caller's transaction.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, ClassVar, TypeAlias

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from orchestration.names import DONE_STEP_STATUSES
from orchestration.store.base import AnyRow, utcnow
from orchestration.store.states import RunState, StepStart
from orchestration.store.tables import outbox_t, step_t

#: An ``INSERT`` with ``on_conflict_do_nothing`` / ``on_conflict_do_update``.
Upsert: TypeAlias = postgresql.Insert | sqlite.Insert

_START_COLUMNS = (
    step_t.c.status,
    step_t.c.attempts,
    step_t.c.output,
    step_t.c.attempt_errors,
    step_t.c.retry_base,
    step_t.c.input,
)


def _keep_input_stmt() -> Any:
    return (
        step_t.update()
        .where(step_t.c.run_id == sa.bindparam("rid"), step_t.c.step_id == sa.bindparam("sid"))
        .values(input=sa.bindparam("input", type_=step_t.c.input.type))
    )


class QueryComponents(ABC):
    """The SQL of one database; one instance per engine (it caches built statements)."""

    #: The SQLAlchemy dialect name it serves.
    dialect: ClassVar[str]

    def __init__(self) -> None:
        self._statements: dict[str, Any] = {}

    def prepared(self, key: str, build: Callable[[], Any]) -> Any:
        """Hot-path statements are built once with bind parameters: building a SQLAlchemy
        construct costs more CPU than the round trip it makes."""
        stmt = self._statements.get(key)
        if stmt is None:
            stmt = self._statements[key] = build()
        return stmt

    @abstractmethod
    def insert(self, table: sa.Table) -> Upsert:
        """``INSERT`` into ``table`` with this dialect's ``ON CONFLICT`` clauses."""

    @abstractmethod
    def insert_run(self, conn: Connection, values: dict[str, Any]) -> None:
        """Insert one ``run`` row (every column given)."""

    @abstractmethod
    def load_state(self, conn: Connection, run_id: str) -> RunState:
        """The run and the status and output of each of its steps, in one query."""

    @abstractmethod
    def start_step(
        self, conn: Connection, run_id: str, step_id: str, agent: str, task_id: str | None = None
    ) -> tuple[RunState, StepStart | None]:
        """Read the run and, when it is live and not past its deadline, start a queued run and
        begin the step; otherwise the ``StepStart`` is None (a step already done comes back as is)."""

    @abstractmethod
    def finish_step(self, conn: Connection, params: dict[str, Any], *, ends_run: bool) -> bool:
        """Write an attempt's outcome unless the record succeeded or was skipped or the run was
        cancelled; with ``ends_run`` the run ends ``succeeded`` with it (unless past its deadline).
        ``params``: ``rid``, ``sid``, ``status``, ``output``, ``error``, ``now``, ``finished`` and,
        to replace them, ``attempt_errors``."""

    @abstractmethod
    def record_step(self, conn: Connection, values: dict[str, Any], *, ends_run: bool) -> bool:
        """Insert-or-update a whole record (``values``: every column but ``id``) unless it
        succeeded or was skipped; ``ends_run`` as in :meth:`finish_step`."""

    @abstractmethod
    def claim_outbox(self, conn: Connection, before: datetime, limit: int) -> list[AnyRow]:
        """Up to ``limit`` unpublished outbox rows written before ``before`` (``id``, ``run_id``,
        ``publication``, ``kind``), held by the caller's transaction so that a second relay does not
        publish them too."""

    @abstractmethod
    def step_writer(self, ends_run: bool, url: str | None = None) -> AbstractContextManager[Connection]:
        """The connection a record write goes to: autocommit, unless the write also ends the run
        and this database needs a transaction to make the two writes one."""

    def pending_outbox(self, before: datetime, limit: int, *columns: sa.Column[Any]) -> sa.Select[Any]:
        """``columns`` (default: what a claim returns) of the oldest unpublished outbox rows written
        before ``before``."""
        columns = columns or (
            outbox_t.c.id,
            outbox_t.c.run_id,
            outbox_t.c.publication,
            outbox_t.c.kind,
            outbox_t.c.resume,
        )
        return (
            sa.select(*columns)
            .where(outbox_t.c.published_at.is_(None), outbox_t.c.created_at < before)
            .order_by(outbox_t.c.created_at, outbox_t.c.id)
            .limit(limit)
        )

    def begin_step(
        self, conn: Connection, run_id: str, step_id: str, agent: str | None, task_id: str | None = None
    ) -> StepStart:
        """Mark the record ``running`` and count the attempt (and when it started, by which task),
        unless it already succeeded or was skipped."""
        params = {"rid": run_id, "sid": step_id, "agent": agent, "now": utcnow(), "tid": task_id}
        row = conn.execute(self.prepared("begin_step", self._begin_step_stmt), params).first()
        if row is None:
            row = conn.execute(
                sa.select(*_START_COLUMNS).where(step_t.c.run_id == run_id, step_t.c.step_id == step_id)
            ).one()
        return StepStart(
            row.status, row.attempts, row.output, list(row.attempt_errors or []), row.retry_base, row.input
        )

    def keep_input(self, conn: Connection, run_id: str, step_id: str, value: Any) -> None:
        """Write the input the record's try runs with (the record is keyed, so a redelivery updates it)."""
        conn.execute(
            self.prepared("keep_input", _keep_input_stmt), {"rid": run_id, "sid": step_id, "input": value}
        )

    def _begin_step_stmt(self) -> Any:
        now = sa.bindparam("now", type_=sa.DateTime(timezone=True))
        stmt = self.insert(step_t).values(
            run_id=sa.bindparam("rid"),
            step_id=sa.bindparam("sid"),
            agent=sa.bindparam("agent"),
            status="running",
            attempts=1,
            started_at=now,
            updated_at=now,
            tries=self._first_try(now),
        )
        return stmt.on_conflict_do_update(
            index_elements=["run_id", "step_id"],
            set_={
                "status": "running",
                "attempts": step_t.c.attempts + 1,
                "started_at": sa.func.coalesce(step_t.c.started_at, now),
                "finished_at": None,
                "updated_at": now,
                "tries": self._next_try(now),
            },
            where=step_t.c.status.notin_(DONE_STEP_STATUSES),
        ).returning(*_START_COLUMNS)

    def _try(self, attempt: Any, now: Any) -> Any:
        """One entry of a record's ``tries`` (SQLite's JSON functions; Postgres overrides)."""
        return sa.func.json_object("attempt", attempt, "started_at", now, "task_id", sa.bindparam("tid"))

    def _first_try(self, now: Any) -> Any:
        return sa.func.json_array(self._try(1, now))

    def _next_try(self, now: Any) -> Any:
        tries = sa.func.coalesce(step_t.c.tries, "[]")
        return sa.func.json_insert(tries, "$[#]", self._try(step_t.c.attempts + 1, now))
