"""Stores beside the configured one, on the same database server: a Postgres schema of its own
(the connections' ``search_path``), or a SQLite file next to the configured file. ``campaignflow
bench`` keeps its runs in one, apart from the production tables."""

from __future__ import annotations

import re
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from orchestration.errors import ConfigurationError
from orchestration.store import migrate
from orchestration.store.db import make_engine

_SEARCH_PATH = re.compile(r"-c\s*search_path=(\S+)")


def schema_of(url: str) -> str | None:
    """The schema a Postgres URL's connections use (the first of its ``search_path`` option), if set."""
    options = make_url(url).query.get("options")
    found = _SEARCH_PATH.search(options if isinstance(options, str) else " ".join(options or ()))
    return found.group(1).split(",")[0] if found else None


def beside(url: str, suffix: str, default_schema: str) -> str:
    """The URL of a store beside ``url``'s: on Postgres the same database with the schema
    ``<schema><suffix>`` (``default_schema`` when ``url`` sets none); on SQLite the file
    ``<name><suffix>.db`` in the same directory (an in-memory database stays in memory)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            return url
        path = Path(parsed.database)
        return parsed.set(database=str(path.with_name(f"{path.stem}{suffix}{path.suffix}"))).render_as_string(
            hide_password=False
        )
    schema = f"{schema_of(url)}{suffix}" if schema_of(url) else default_schema
    options = parsed.query.get("options")
    text = options if isinstance(options, str) else " ".join(options or ())
    text = _SEARCH_PATH.sub("", text).strip()
    return parsed.update_query_dict({"options": f"{text} -csearch_path={schema}".strip()}).render_as_string(
        hide_password=False
    )


#: How long :func:`prepare` waits for another process preparing the same schema.
PREPARE_WAIT_SECONDS = 300.0


def prepare(url: str) -> None:
    """Make the store at ``url`` ready: on Postgres its schema created if missing, then migrated to
    head. Processes that prepare the same schema at once (a bench and its workers) take turns: an
    advisory lock on the schema's name is held meanwhile. The others poll for it between idle
    moments rather than wait inside a statement, whose snapshot would hold up a concurrent index
    build of the migration holding the lock."""
    schema = schema_of(url)
    if make_url(url).get_backend_name() != "postgresql" or schema is None:
        migrate.upgrade(url)
        return
    engine = make_engine(url, autocommit=True)
    try:
        with engine.connect() as conn:
            key = sa.func.hashtext(f"campaignflow:prepare:{schema}")
            deadline = time.monotonic() + PREPARE_WAIT_SECONDS
            while not conn.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar_one():
                if time.monotonic() > deadline:
                    raise ConfigurationError(
                        f"schema {schema}: another process has been preparing it for "
                        f"{PREPARE_WAIT_SECONDS:.0f} s; check `campaignflow db current` there"
                    )
                time.sleep(0.2)
            try:
                conn.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
                migrate.upgrade(url)
            finally:
                conn.execute(sa.select(sa.func.pg_advisory_unlock(key)))
    finally:
        engine.dispose()
