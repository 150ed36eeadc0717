"""The harness: the project's real Celery app pointed at local Redis (its own databases, flushed at
start), a fresh Postgres schema built by the Alembic migrations, and one in-process worker (threads)
consuming every queue but ``agents.isolated``, which crash and time-limit tests serve with real
``celery worker`` subprocesses. Each test starts from empty tables."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from tests.support import services

_SCHEMA = services.new_schema_name()
os.environ.update(
    CAMPAIGNFLOW_REDIS_KEY_PREFIX=f"{_SCHEMA}:",
    CAMPAIGNFLOW_BROKER_URL=services.redis_url(services.SESSION_REDIS_DBS[0]),
    CAMPAIGNFLOW_RESULT_BACKEND=services.redis_url(services.SESSION_REDIS_DBS[1]),
    CAMPAIGNFLOW_DATABASE_URL=services.schema_url(_SCHEMA),
    CAMPAIGNFLOW_PLUGINS="tests.support.agents",
    CAMPAIGNFLOW_UNSUBSCRIBE_URL="https://mail.example.test/v1/unsubscribe",
    CAMPAIGNFLOW_UNSUBSCRIBE_SECRET="unsubscribe-secret-of-the-tests",
)
for _name in ("CAMPAIGNFLOW_SMTP_URL", "CAMPAIGNFLOW_LLM_BASE_URL", "CAMPAIGNFLOW_FLOWS_DIR"):
    os.environ.pop(_name, None)

import pytest  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from celery.contrib.testing.worker import start_worker  # noqa: E402

from orchestration.store import migrate, sql_engine  # noqa: E402
from tests.support.agents import ISOLATED_QUEUE  # noqa: E402
from tests.support.threads import release_all_result_backends  # noqa: E402
from tests.support.wiring import app, registry  # noqa: E402

_LOCK_CONFLICTS = ("40P01", "55P03")  # deadlock detected, lock not available
TABLES = (
    "step_record",
    "run_outbox",
    "run",
    "run_counter",
    "ingest_key",
    "crm_contact",
    "rejected_event",
    "dead_letter",
    "routing_rule",
    "campaign_slot",
    "campaign",
    "delivery",
    "heartbeat",
    "suppression",
    "suppression_log",
    "frequency_slot",
    "recipient_guard",
    "domain_backoff",
)


@pytest.fixture(scope="session")
def database() -> Iterator[str]:
    """A schema of its own for this session, built from empty by ``alembic upgrade head``."""
    services.check_services()
    services.create_schema(_SCHEMA)
    url = services.schema_url(_SCHEMA)
    migrate.upgrade(url)
    yield url
    sql_engine(url).dispose()
    services.drop_schema(_SCHEMA)


@pytest.fixture(scope="session")
def celery_worker_session(database: str) -> Iterator[object]:
    services.clear_prefix(f"{_SCHEMA}:")
    app.loader.import_default_modules()
    with start_worker(
        app,
        pool="threads",
        concurrency=8,
        queues=[q for q in registry.queue_names() if q != ISOLATED_QUEUE],
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=30,
    ) as worker:
        yield worker
    release_all_result_backends()
    services.clear_prefix(f"{_SCHEMA}:")


@pytest.fixture
def clean_db(database: str) -> str:
    """Empty every table. A task left over from the previous test may still be writing; TRUNCATE then
    loses a deadlock to it (or waits past its lock timeout), so it is tried again until the writer is
    done."""
    for attempt in range(20):
        try:
            with sql_engine(database).begin() as conn:
                conn.execute(sa.text("SET LOCAL lock_timeout = '5s'"))
                conn.execute(sa.text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))
            return database
        except sa.exc.OperationalError as exc:
            if attempt == 19 or getattr(exc.orig, "sqlstate", None) not in _LOCK_CONFLICTS:
                raise
            time.sleep(0.2)
    return database


@pytest.fixture
def worker(celery_worker_session: object, clean_db: str) -> object:
    """A running worker on every queue, and empty tables."""
    return celery_worker_session
