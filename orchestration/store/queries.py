"""The dialect-specific SQL of an engine's database, chosen once per engine."""

from __future__ import annotations

from contextlib import AbstractContextManager
from weakref import WeakKeyDictionary

from sqlalchemy.engine import Connection, Engine

from orchestration.errors import ConfigurationError
from orchestration.store.db import sql_engine
from orchestration.store.dialects.base import QueryComponents
from orchestration.store.dialects.postgres import PostgresQueryComponents
from orchestration.store.dialects.sqlite import SqliteQueryComponents

IMPLEMENTATIONS: dict[str, type[QueryComponents]] = {
    impl.dialect: impl for impl in (PostgresQueryComponents, SqliteQueryComponents)
}
_by_engine: WeakKeyDictionary[Engine, QueryComponents] = WeakKeyDictionary()


def queries(bind: Connection | Engine) -> QueryComponents:
    """The :class:`QueryComponents` of ``bind``'s engine (made on first use)."""
    engine = bind.engine
    found = _by_engine.get(engine)
    if found is None:
        impl = IMPLEMENTATIONS.get(engine.dialect.name)
        if impl is None:
            raise ConfigurationError(
                f"CAMPAIGNFLOW_DATABASE_URL: the run store supports {' and '.join(IMPLEMENTATIONS)}, "
                f"not {engine.dialect.name}"
            )
        found = _by_engine[engine] = impl()
    return found


def step_writer(ends_run: bool, url: str | None = None) -> AbstractContextManager[Connection]:
    """The connection a step's record write goes to (``ends_run``: the write also ends the run)."""
    return queries(sql_engine(url)).step_writer(ends_run, url)
