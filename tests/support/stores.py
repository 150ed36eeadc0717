"""A run store of a test module's own, on either database the store supports."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from orchestration.store import migrate, sql_engine
from tests.support import services


@contextmanager
def migrated_store(dialect: str, directory: Path, schema_prefix: str) -> Iterator[str]:
    """The URL of a store built by ``alembic upgrade head``: a SQLite file in ``directory``
    (``dialect == "sqlite"``) or a Postgres schema of its own named from ``schema_prefix``, dropped
    on exit."""
    if dialect == "sqlite":
        url = f"sqlite:///{directory / 'runs.db'}"
        migrate.upgrade(url)
        yield url
        sql_engine(url).dispose()
        return
    services.check_services()
    schema = services.new_schema_name(schema_prefix)
    services.create_schema(schema)
    url = services.schema_url(schema)
    migrate.upgrade(url)
    yield url
    sql_engine(url).dispose()
    sql_engine(url, autocommit=True).dispose()
    services.drop_schema(schema)
