"""Engines and sessions. One engine per process: a forked worker child never reuses its parent's
pooled connections, because the engine is keyed by pid and re-created after a fork."""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from orchestration.settings import get_settings

_lock = threading.Lock()
_engines: dict[tuple[int, str, bool], Engine] = {}


def ensure_sqlite_dir(url: str) -> None:
    """SQLite creates the file but not its directory."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


def make_engine(url: str, *, autocommit: bool = False) -> Engine:
    """An engine for ``url``; with ``autocommit`` its connections are autocommit from the start, so
    a checkout neither switches the isolation level nor rolls back on return."""
    kwargs: dict[str, Any] = {"future": True}
    if autocommit:
        kwargs.update(isolation_level="AUTOCOMMIT", pool_reset_on_return=None)
    if url.startswith("sqlite"):
        ensure_sqlite_dir(url)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        engine = sa.create_engine(url, **kwargs)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # A pooled connection that may have died while idle is tested at checkout (one round trip) and
    # replaced, so the first statement after a database restart or failover does not fail on it; a
    # dead one found this way retires every older idle one with it (:func:`ping_when_idle`).
    # Recycling after 30 minutes keeps a connection from outliving a server-side or network idle
    # timeout.
    kwargs.update(pool_size=10, max_overflow=20, pool_recycle=1800)
    engine = sa.create_engine(url, **kwargs)
    ping_when_idle(engine)
    return engine


#: A pooled connection checked in longer ago than this is pinged before it is used again.
PING_AFTER_IDLE_SECONDS = 1.0
_IDLE_SINCE = "campaignflow_idle_since"


def ping_when_idle(engine: Engine, after: float = PING_AFTER_IDLE_SECONDS) -> None:
    """Ping a pooled connection at checkout only when it may be dead: the server said something
    on it while it sat in the pool (a backend that exits, on a restart or a kill, closes its socket,
    which a zero-timeout poll sees without a round trip), or it sat idle for ``after`` seconds (a
    connection that died silently, behind a network that dropped it).

    SQLAlchemy's ``pool_pre_ping`` pings at every checkout: on the hot path, where each statement
    checks a connection out, that doubled a step's round trips. A fresh connection is never pinged.
    A failed ping retires every pooled connection older than now, as the pre-ping does. A connection
    that breaks in use (or between the poll and its statement) raises a store outage like any other:
    the task waits it out, and :func:`autocommit` retires the pool's idle connections with it.
    """

    def checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    def checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop(_IDLE_SINCE, None)
        if since is None or (time.monotonic() - since < after and not _readable(dbapi_conn)):
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            if engine.dialect.is_disconnect(exc, dbapi_conn, None):
                raise sa.exc.InvalidatePoolError() from exc
            raise

    sa.event.listen(engine, "checkin", checkin)
    sa.event.listen(engine, "checkout", checkout)


def _readable(dbapi_conn: Any) -> bool:
    """Has an idle connection's socket anything to read (or is it closed)? An idle autocommit
    connection expects nothing from the server, so anything there means a ping is due."""
    try:
        fd = dbapi_conn.fileno()
    except Exception:  # the driver knows it is closed
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def sql_engine(url: str | None = None, *, autocommit: bool = False) -> Engine:
    """The SQLAlchemy engine of this process for ``url`` (default: the configured run store).

    Named apart from the OrchestrationEngine (``runtime.current().engine``), which compiles and runs
    flows; this one only talks to the database.
    """
    url = url or get_settings().effective_database_url()
    key = (os.getpid(), url, autocommit)
    engine = _engines.get(key)
    if engine is None:
        with _lock:
            engine = _engines.get(key)
            if engine is None:
                engine = _engines[key] = make_engine(url, autocommit=autocommit)
    return engine


@contextmanager
def autocommit(url: str | None = None) -> Iterator[Connection]:
    """A connection whose every statement commits on its own: for single-statement writes and reads
    on the hot path, which then cost one round trip each instead of BEGIN, statement, COMMIT. It
    comes from a pool of its own whose connections stay in autocommit.

    The hot path talks to the psycopg connection directly, where SQLAlchemy does not see a broken
    connection. Here, as SQLAlchemy does on a disconnect, a broken connection is thrown away with
    the pool's idle ones (they most likely broke with it: a restart, a failover).
    """
    engine = sql_engine(url, autocommit=True)
    with engine.connect() as conn:
        try:
            yield conn
        except psycopg.OperationalError:
            if getattr(conn.connection.driver_connection, "closed", True):
                conn.invalidate()
                engine.pool.dispose()
            raise


def reset_engines() -> None:
    """Forget this process's engines (after a fork, or when tests change the database URL)."""
    with _lock:
        for (pid, _url, _autocommit), engine in list(_engines.items()):
            if pid == os.getpid():
                engine.dispose()
            else:
                engine.dispose(close=False)
        _engines.clear()
