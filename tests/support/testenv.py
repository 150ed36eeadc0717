"""Where the test services are: every value comes from an environment variable, with the local
default (the README's "Test services" table lists them). The older ``TEST_*`` names still work when
the ``CAMPAIGNFLOW_TEST_*`` one is unset.

Plain Python only (no pytest): the worker subprocesses import this through ``tests.support.agents``.
"""

from __future__ import annotations

import os


class ServiceEnvError(ValueError):
    """A test-service variable that cannot be used; the message names it and the fix."""


def _get(name: str, legacy: str | None, default: str) -> tuple[str, str]:
    """The value and the variable it came from (``name`` when it is the default)."""
    for var in [name, legacy] if legacy else [name]:
        value = os.environ.get(var, "").strip()
        if value:
            return value, var
    return default, name


def _port(name: str, legacy: str, default: int) -> int:
    raw, var = _get(name, legacy, str(default))
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ServiceEnvError(f"{var}={raw!r}: expected a TCP port number, like {default}")
    return int(raw)


def _dbs(name: str, legacy: str | None, default: tuple[int, ...]) -> tuple[int, ...]:
    raw, var = _get(name, legacy, ",".join(map(str, default)))
    parts = [p.strip() for p in raw.split(",")]
    if len(parts) != len(default) or not all(p.isdigit() for p in parts) or len(set(parts)) != len(parts):
        example = ",".join(map(str, default))
        raise ServiceEnvError(
            f"{var}={raw!r}: expected {len(default)} different Redis database numbers, like {example}"
        )
    return tuple(int(p) for p in parts)


#: Redis of the tests (broker, results, ledger): host and port.
REDIS_HOST = _get("CAMPAIGNFLOW_TEST_REDIS_HOST", "TEST_REDIS_HOST", "127.0.0.1")[0]
REDIS_PORT = _port("CAMPAIGNFLOW_TEST_REDIS_PORT", "TEST_REDIS_PORT", 6379)
#: Redis databases of the session's broker and result backend. Every test session also prefixes all
#: its keys with its own schema name, so two sessions never share a queue.
_BROKER_DB, _RESULTS_DB = _dbs("CAMPAIGNFLOW_TEST_REDIS_DBS", None, (11, 12))
SESSION_REDIS_DBS = (_BROKER_DB, _RESULTS_DB)
#: Redis database of the test agents' ledger (call and side-effect counts, keyed by run id).
LEDGER_REDIS_DB = _dbs("CAMPAIGNFLOW_TEST_LEDGER_DB", "TEST_LEDGER_DB", (13,))[0]
#: Postgres database the tests use: each session makes (and drops) a schema of its own in it.
DATABASE_URL = _get(
    "CAMPAIGNFLOW_TEST_DATABASE_URL", "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)[0]
