"""Telling a run store outage from a real SQL error.

An outage is a failure at the connection level: the server refused or dropped the connection, is
starting up or shutting down, or an administrator ended the connection. Waiting and trying again is the
cure. A real SQL error (a constraint, a bad statement, a deadlock, a statement timeout) comes from a
server that answered: trying the same thing again later changes nothing, or the caller handles it.

The hot path runs statements on the psycopg connection itself, so both psycopg's own errors and
SQLAlchemy's wrapped ones are read here.
"""

from __future__ import annotations

import psycopg
import sqlalchemy as sa

#: SQLSTATEs of a connection the server ended or would not start: class 08 (connection exception) and
#: 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now (starting up, shutting down).
_OUTAGE_STATES = ("57P01", "57P02", "57P03")

#: What libpq and psycopg say when the connection itself is gone (they give no SQLSTATE for these).
_OUTAGE_WORDS = (
    "connection refused",
    "connection failed",
    "could not connect",
    "server closed the connection",
    "connection is closed",
    "connection is lost",
    "connection was lost",
    "connection reset",
    "connection timed out",
    "no connection to the server",
    "terminating connection",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "consuming input failed",
    "sending query failed",
    "ssl connection has been closed",
)


def _driver_error(exc: BaseException) -> BaseException:
    """The driver's own exception under a SQLAlchemy one."""
    if isinstance(exc, sa.exc.DBAPIError) and isinstance(exc.orig, BaseException):
        return exc.orig
    return exc


def is_store_outage(exc: BaseException) -> bool:
    """True when ``exc`` says the run store could not be reached (wait and try again), False for
    anything else, real SQL errors included."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True  # SQLAlchemy found the connection broken under the statement
    orig = _driver_error(exc)
    if not isinstance(orig, psycopg.OperationalError | psycopg.InterfaceError):
        return False
    state = orig.sqlstate
    if state is not None:
        return state.startswith("08") or state in _OUTAGE_STATES
    if isinstance(orig, psycopg.OperationalError):
        return True  # no SQLSTATE: the client side failed (connect, send, receive, a closed connection)
    text = str(orig).lower()
    return any(words in text for words in _OUTAGE_WORDS)


def describe(exc: BaseException) -> str:
    """What the store said, in one line without the statement: ``connection failed: ... Connection
    refused``, ``the database system is starting up``."""
    orig = _driver_error(exc)
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    text = lines[0] if lines else type(orig).__name__
    return text if len(text) <= 300 else text[:297] + "..."
