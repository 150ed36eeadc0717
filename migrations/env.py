"""Alembic environment: the URL comes from the alembic config (set by orchestration.store.migrate) or
from the campaignflow settings when run as ``alembic upgrade head``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import Connection, Engine

from migrations.metadata import TARGET_METADATA
from orchestration.settings import get_settings
from orchestration.store.db import ensure_sqlite_dir

config = context.config
target_metadata = list(TARGET_METADATA)


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().effective_database_url()


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    ensure_sqlite_dir(_url())
    given = config.attributes.get("connection")  # an open connection or an engine, when a caller passes one
    if isinstance(given, Connection):
        _run(given)
        return
    engine = given if isinstance(given, Engine) else create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
