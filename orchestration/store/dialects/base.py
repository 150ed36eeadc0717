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
from typing import Any, ClassVar, TypeAlias

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from orchestration.names import DONE_STEP_STATUSES
from orchestration.store.base import utcnow
from orchestration.store.states import RunState, StepStart
from orchestration.store.tables import step_t

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
        self, conn: Connection, run_id: str, step_id: str, agent: str
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
    def step_writer(self, ends_run: bool, url: str | None = None) -> AbstractContextManager[Connection]:
        """The connection a record write goes to: autocommit, unless the write also ends the run
        and this database needs a transaction to make the two writes one."""

    def begin_step(self, conn: Connection, run_id: str, step_id: str, agent: str | None) -> StepStart:
        """Mark the record ``running`` and count the attempt, unless it already succeeded or was skipped."""
        params = {"rid": run_id, "sid": step_id, "agent": agent, "now": utcnow()}
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
