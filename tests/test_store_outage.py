"""The store's outage classifier: a connection-level failure (refused, cut, the database starting up
or shutting down, a connection ended by an administrator) is an outage to wait out; a real SQL
error, even one the driver calls ``OperationalError``, is not. Real errors from real connections."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from orchestration.errors import StepFailedError
from orchestration.store.outage import describe, is_store_outage
from tests.support.postgres import free_port


def _raised(action: Callable[[], object]) -> BaseException:
    try:
        action()
    except Exception as exc:
        return exc
    raise AssertionError("nothing was raised")


@pytest.fixture
def store(database: str) -> Iterator[sa.Engine]:
    """The test database, with no pool: every connection is this test's own."""
    engine = sa.create_engine(database, poolclass=NullPool)
    yield engine
    engine.dispose()


@contextmanager
def _driver(engine: sa.Engine) -> Iterator[psycopg.Connection]:
    """The psycopg connection under a pooled one, as the store's hot path uses it."""
    pooled = engine.raw_connection()
    driver = pooled.driver_connection
    assert isinstance(driver, psycopg.Connection)
    try:
        yield driver
    finally:
        if driver.broken or driver.closed:
            pooled.invalidate()  # a dead connection cannot be reset: drop it quietly
        else:
            pooled.close()


def test_a_refused_connection_is_an_outage_through_the_driver_and_sqlalchemy() -> None:
    port = free_port()  # nothing listens there
    raw = _raised(lambda: psycopg.connect(f"host=127.0.0.1 port={port} user=postgres connect_timeout=5"))
    engine = sa.create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", poolclass=NullPool)
    wrapped = _raised(engine.connect)
    assert isinstance(raw, psycopg.OperationalError)
    assert isinstance(wrapped, sa.exc.OperationalError)
    assert is_store_outage(raw)
    assert is_store_outage(wrapped)
    assert "refused" in describe(wrapped).lower()
    assert "\n" not in describe(wrapped)


def test_a_connection_ended_under_a_statement_is_an_outage(store: sa.Engine) -> None:
    with store.connect() as conn:
        wrapped = _raised(lambda: conn.execute(sa.text("select pg_terminate_backend(pg_backend_pid())")))
    with _driver(store) as driver:
        raw = _raised(lambda: driver.execute("select pg_terminate_backend(pg_backend_pid())"))
    assert isinstance(wrapped, sa.exc.OperationalError)
    assert is_store_outage(wrapped)
    assert isinstance(raw, psycopg.OperationalError)
    assert is_store_outage(raw)


def test_real_sql_errors_are_not_outages(store: sa.Engine) -> None:
    with store.connect() as conn:
        missing = _raised(lambda: conn.execute(sa.text("select * from no_such_table")))
    with store.connect() as conn:
        conn.execute(sa.text("create temporary table once (id int primary key)"))
        conn.execute(sa.text("insert into once values (1)"))
        twice = _raised(lambda: conn.execute(sa.text("insert into once values (1)")))
    with store.connect() as conn:  # a statement timeout: the driver's OperationalError, not an outage
        conn.execute(sa.text("set statement_timeout = 50"))
        slow = _raised(lambda: conn.execute(sa.text("select pg_sleep(2)")))
    with _driver(store) as driver:
        raw = _raised(lambda: driver.execute("select 1/0"))
    assert isinstance(missing, sa.exc.ProgrammingError)
    assert isinstance(twice, sa.exc.IntegrityError)
    assert isinstance(slow, sa.exc.OperationalError)
    assert isinstance(raw, psycopg.DataError)
    for exc in (missing, twice, slow, raw):
        assert not is_store_outage(exc), describe(exc)


@pytest.mark.parametrize(
    ("exc", "outage"),
    [
        (psycopg.errors.CannotConnectNow("the database system is starting up"), True),
        (psycopg.errors.AdminShutdown("terminating connection due to administrator command"), True),
        (
            psycopg.errors.CrashShutdown("terminating connection because of crash of another server process"),
            True,
        ),
        (psycopg.OperationalError("connection failed: FATAL:  the database system is shutting down"), True),
        (psycopg.InterfaceError("the connection is lost"), True),
        (psycopg.InterfaceError("the cursor is closed"), False),
        (psycopg.errors.DeadlockDetected("deadlock detected"), False),
        (ValueError("connection refused"), False),
        (StepFailedError("a: connection refused"), False),
    ],
)
def test_what_the_server_and_the_driver_say(exc: BaseException, outage: bool) -> None:
    """What the server answers while it starts or stops, and what the driver raises on its own
    (the cases a running server cannot be made to produce on demand)."""
    assert is_store_outage(exc) is outage
