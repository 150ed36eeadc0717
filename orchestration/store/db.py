"""Engines and sessions. One engine per process: a forked worker child never reuses its parent's
pooled connections, because the engine is keyed by pid and re-created after a fork."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from orchestration.settings import get_settings

_lock = threading.Lock()
_engines: dict[tuple[int, str], Engine] = {}


def ensure_sqlite_dir(url: str) -> None:
    """SQLite creates the file but not its directory."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


def make_engine(url: str) -> Engine:
    kwargs: dict[str, Any] = {"future": True}
    if url.startswith("sqlite"):
        ensure_sqlite_dir(url)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        engine = sa.create_engine(url, **kwargs)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # No pre-ping: it costs a round trip per transaction. A connection broken by a database restart
    # is invalidated on first use, and step tasks retry on connection errors.
    kwargs.update(pool_size=10, max_overflow=20, pool_recycle=1800)
    return sa.create_engine(url, **kwargs)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def get_engine(url: str | None = None) -> Engine:
    """The engine of this process for ``url`` (default: the configured run store)."""
    url = url or get_settings().effective_database_url()
    key = (os.getpid(), url)
    engine = _engines.get(key)
    if engine is None:
        with _lock:
            engine = _engines.get(key)
            if engine is None:
                engine = _engines[key] = make_engine(url)
    return engine


def autocommit(url: str | None = None) -> Connection:
    """A connection whose every statement commits on its own: for single-statement writes and reads
    on the hot path, which then cost one round trip each instead of BEGIN, statement, COMMIT."""
    return get_engine(url).connect().execution_options(isolation_level="AUTOCOMMIT")


def reset_engines() -> None:
    """Forget this process's engines (after a fork, or when tests change the database URL)."""
    with _lock:
        for (pid, _url), engine in list(_engines.items()):
            if pid == os.getpid():
                engine.dispose()
            else:
                engine.dispose(close=False)
        _engines.clear()
