"""Alembic, driven from Python: ``campaignflow db upgrade`` and the tests use these."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from orchestration.errors import ConfigurationError
from orchestration.settings import get_settings
from orchestration.store.db import sql_engine


def script_location() -> Path:
    """The directory of the ``migrations`` package, found without importing it (its ``env.py``
    imports the store: the dependency goes that way only)."""
    spec = importlib.util.find_spec("migrations")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError("the migrations package is not installed; reinstall campaignflow")
    return Path(next(iter(spec.submodule_search_locations)))


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location()))
    cfg.set_main_option("sqlalchemy.url", (url or get_settings().effective_database_url()).replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def heads(url: str | None = None) -> tuple[str, ...]:
    return tuple(ScriptDirectory.from_config(alembic_config(url)).get_heads())


def current(url: str | None = None) -> tuple[str, ...]:
    with sql_engine(url).connect() as conn:
        return tuple(MigrationContext.configure(conn).get_current_heads())


def at_head(url: str | None = None) -> bool:
    return set(current(url)) == set(heads(url))
