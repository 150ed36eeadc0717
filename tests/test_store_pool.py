"""The store's pools test a connection at checkout only when it may be dead (``ping_when_idle``):
not one used a moment ago, always one that sat idle long enough or whose server end went away."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from orchestration.store.db import make_engine, ping_when_idle
from tests.support import services


def _pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the dialect's pings (each still goes to the server)."""
    seen: list[int] = []
    ping = engine.dialect.do_ping

    def counting(dbapi_conn: Any) -> bool:
        seen.append(1)
        return bool(ping(dbapi_conn))

    monkeypatch.setattr(engine.dialect, "do_ping", counting)
    return seen


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("select pg_backend_pid()")).scalar_one())


@pytest.fixture
def store(database: str) -> Iterator[Engine]:
    engine = make_engine(database, autocommit=True)
    yield engine
    engine.dispose()


def test_a_connection_used_a_moment_ago_is_not_pinged(store: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    pings = _pings(store, monkeypatch)
    pids = {_backend_pid(store) for _ in range(20)}
    assert len(pids) == 1  # one pooled connection, reused
    assert pings == []


def test_a_connection_idle_past_the_limit_is_pinged(database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = sa.create_engine(database, isolation_level="AUTOCOMMIT")
    ping_when_idle(engine, after=0.0)  # every connection counts as idle long enough
    pings = _pings(engine, monkeypatch)
    try:
        first = _backend_pid(engine)  # a fresh connection: no ping
        assert pings == []
        assert _backend_pid(engine) == first
        assert len(pings) == 1
    finally:
        engine.dispose()


def test_a_connection_whose_backend_is_gone_is_replaced_without_an_error(
    store: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _backend_pid(store)
    admin = sa.create_engine(services.PG_BASE, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:  # waits until the backend has exited
            assert conn.execute(sa.text("select pg_terminate_backend(:pid, 10000)"), {"pid": first}).scalar()
    finally:
        admin.dispose()
    pings = _pings(store, monkeypatch)
    second = _backend_pid(store)  # the poll saw the closed socket, the ping failed: a new connection
    assert second != first
    assert len(pings) == 1
