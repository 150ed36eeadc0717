"""What the store modules share: the tables, the clock, dialect helpers and prepared statements."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from orchestration.store.models import IngestKey, Run, StepRecord

run_t = cast(sa.Table, Run.__table__)
step_t = cast(sa.Table, StepRecord.__table__)
key_t = cast(sa.Table, IngestKey.__table__)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _insert(conn: Connection, table: sa.Table) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


_statements: dict[tuple[str, str], Any] = {}


def _prepared(conn: Connection, key: str, build: Callable[[Connection], Any]) -> Any:
    """Hot-path statements are built once per dialect with bind parameters: building a SQLAlchemy
    construct costs more CPU than the round trip it makes."""
    cache_key = (conn.dialect.name, key)
    stmt = _statements.get(cache_key)
    if stmt is None:
        stmt = _statements[cache_key] = build(conn)
    return stmt


def _jsonb(params: dict[str, Any], *names: str) -> dict[str, Any]:
    """``params`` for a statement on the driver, with the named JSON values wrapped for psycopg
    (``None`` stays SQL NULL)."""
    return {**params, **{name: Jsonb(params[name]) for name in names if params.get(name) is not None}}


def _driver(conn: Connection) -> Any:
    """The psycopg connection under ``conn`` (in ``conn``'s transaction, or autocommit)."""
    return conn.connection.driver_connection


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
