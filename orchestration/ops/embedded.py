"""The embedded default: one process, no servers.

The in-process broker (``memory://``) and result backend (``cache+memory://``) carry the real Celery
messages; worker threads consume every routed queue, ``orchestration`` included (Celery's built-ins
such as ``celery.accumulate`` land there); runs are stored in a SQLite file built by the same Alembic
migrations as Postgres. ``campaignflow demo`` runs on this.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from celery.contrib.testing.worker import start_worker

from orchestration.bootstrap import bootstrap
from orchestration.engine import timers
from orchestration.envelope import Envelope
from orchestration.errors import ConfigurationError
from orchestration.names import TERMINAL_RUN_STATUSES
from orchestration.runtime import Runtime, current
from orchestration.settings import EMBEDDED_BROKER_URL, get_settings
from orchestration.store import repository as repo
from orchestration.store import reset_engines, sql_engine, stats


def use_embedded(data_dir: Path) -> tuple[Runtime, list[str]]:
    """Wire this process for the embedded default, with its SQLite file under ``data_dir``.

    Returns the runtime and the names of server settings that were set and are now ignored (by
    this process only).
    """
    configured = get_settings()
    ignored = configured.server_settings()
    data_dir.mkdir(parents=True, exist_ok=True)
    reset_engines()
    runtime = bootstrap(settings=configured.embedded_variant(data_dir.resolve()))
    if runtime.app.conf.broker_url != EMBEDDED_BROKER_URL:
        raise ConfigurationError(f"embedded mode: broker is still {runtime.app.conf.broker_url!r}")
    return runtime, ignored


@contextmanager
def embedded_worker(concurrency: int = 2, loglevel: str = "WARNING") -> Iterator[object]:
    """Worker threads in this process consuming every routed queue of the registry, and the timer
    poller in a thread of its own (sleeping and waiting runs wake with no beat)."""
    runtime = current()
    app, registry = runtime.app, runtime.registry
    app.set_default()  # pool threads must publish through this app, not a default AMQP one
    app.loader.import_default_modules()
    with (
        start_worker(
            app,
            pool="threads",
            concurrency=concurrency,
            perform_ping_check=False,
            queues=registry.queue_names(),
            loglevel=loglevel,
            shutdown_timeout=15,
        ) as worker,
        timers.polling(runtime.engine, runtime.settings.timer_interval),
    ):  # no beat here
        try:
            yield worker
        finally:
            # stop the blueprint now: leaving start_worker then only waits out one broker poll
            worker.stop(in_sighandler=False)


def load_events(path: Path) -> list[dict[str, Any]]:
    """Events from a JSON file (one event or a list) or from every ``*.json`` in a directory."""
    if not path.exists():
        raise ConfigurationError(f"events: {path} does not exist; pass --events FILE_OR_DIR")
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    if not files:
        raise ConfigurationError(f"events: no *.json file in {path}; add one or pass --events FILE")
    events: list[dict[str, Any]] = []
    for file in files:
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"events: {file} is not valid JSON ({exc}); fix the file") from None
        items = data if isinstance(data, list) else [data]
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise ConfigurationError(f"events: {file} item {i} is not a JSON object; give an event")
            events.append(dict(item))
    return events


def default_events_dir() -> Path:
    """``examples/events`` of the source tree, else of the working directory (the image's /app)."""
    beside = Path(__file__).resolve().parents[2] / "examples" / "events"
    return beside if beside.is_dir() else Path.cwd() / "examples" / "events"


def wait_terminal(run_ids: Sequence[str], timeout: float, poll: float = 0.02) -> list[Envelope]:
    """Poll the run store until every run is terminal (or ``timeout`` passes); the envelopes."""
    deadline = time.monotonic() + timeout
    pending = set(run_ids)
    while pending and time.monotonic() < deadline:
        with sql_engine().connect() as conn:
            pending = {r for r in pending if repo.run_status(conn, r) not in TERMINAL_RUN_STATUSES}
        if pending:
            time.sleep(poll)
    with sql_engine().connect() as conn:
        return [repo.get_envelope(conn, r) for r in run_ids]


def count_rows(table: str) -> int | None:
    """Rows of one of our tables in the run store (None when the table does not exist)."""
    try:
        with sql_engine().connect() as conn:
            return stats.count_rows(conn, table)
    except sa.exc.DBAPIError:
        return None
