"""``campaignflow doctor``: is this deployment able to run flows?

Each check returns ``ok``, ``warn`` or ``FAIL`` with one line of detail that says what to do. The
checks: the broker answers, the run store answers, its migrations are at head, every routed queue
has a consumer, beat ticked recently (its ``heartbeat`` row), and the outbox holds no publication
older than the relay should have published (its backlog and the oldest one's age).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa

from orchestration.engine.publish import RELAY_GRACE
from orchestration.names import AGENT_QUEUE_PREFIX, BEAT_HEARTBEAT, ENGINE_QUEUE, SWEEPER_HEARTBEAT
from orchestration.runtime import current
from orchestration.settings import Settings, get_settings
from orchestration.store import migrate, outbox, sql_engine, stats
from orchestration.store.heartbeats import last_beats
from orchestration.timefmt import iso_utc

Status = Literal["ok", "warn", "FAIL"]
#: Heartbeats written by beat-scheduled tasks, and the setting that gives each one's interval.
TICKS = {BEAT_HEARTBEAT: "campaign_tick_interval", SWEEPER_HEARTBEAT: "sweep_interval"}
#: A tick older than this many intervals counts as stale.
STALE_INTERVALS = 3


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _first_line(exc: object) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {_first_line(exc)}"


def _ms(started: float) -> str:
    return f"{(time.perf_counter() - started) * 1000:.0f} ms"


def check_broker(app: Any, timeout: float) -> Check:
    url = app.conf.broker_url or ""
    if url.startswith("memory://"):
        return Check("broker", "ok", "in-process broker (embedded default; no CAMPAIGNFLOW_BROKER_URL)")
    started = time.perf_counter()
    conn = app.connection_for_write()
    try:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
        client = getattr(conn.default_channel, "client", None)
        if client is not None and hasattr(client, "ping"):
            client.ping()
    except Exception as exc:
        return Check(
            "broker",
            "FAIL",
            f"{conn.as_uri()}: {_describe(exc)}; check CAMPAIGNFLOW_BROKER_URL and that the broker runs",
        )
    finally:
        conn.release()
    return Check("broker", "ok", f"{conn.as_uri()} answered ping in {_ms(started)}")


def check_database(url: str) -> Check:
    started = time.perf_counter()
    shown = sa.engine.make_url(url).render_as_string(hide_password=True)
    try:
        with sql_engine(url).connect() as conn:
            stats.ping(conn)
    except sa.exc.DBAPIError as exc:
        return Check("database", "FAIL", f"{shown}: {_first_line(exc.orig)}; check CAMPAIGNFLOW_DATABASE_URL")
    return Check("database", "ok", f"{shown} answered in {_ms(started)}")


def check_migrations(url: str) -> Check:
    try:
        current, heads = migrate.current(url), migrate.heads(url)
    except sa.exc.DBAPIError as exc:
        return Check("migrations", "FAIL", f"cannot read the revision ({_first_line(exc.orig)})")
    if set(current) == set(heads):
        return Check("migrations", "ok", f"at head {', '.join(heads)}")
    return Check(
        "migrations",
        "FAIL",
        f"at {', '.join(current) or 'base (empty)'}, head is {', '.join(heads)}; "
        "run `campaignflow db upgrade`",
    )


def check_consumers(app: Any, queues: list[str], timeout: float) -> Check:
    if (app.conf.broker_url or "").startswith("memory://"):
        return Check("consumers", "warn", "embedded: workers run inside `campaignflow demo` only")
    try:
        replies = app.control.inspect(timeout=timeout).active_queues() or {}
    except Exception as exc:
        return Check("consumers", "FAIL", f"cannot ask the workers ({_describe(exc)})")
    consumed: dict[str, list[str]] = {}
    for worker, worker_queues in replies.items():
        for q in worker_queues or []:
            consumed.setdefault(q["name"], []).append(worker)
    missing = [q for q in queues if q not in consumed]
    if not replies:
        return Check("consumers", "FAIL", f"no worker answered within {timeout:g} s; start the workers")
    if missing:
        pools = ", ".join(q if q == ENGINE_QUEUE else q.removeprefix(AGENT_QUEUE_PREFIX) for q in missing)
        return Check(
            "consumers",
            "FAIL",
            f"no consumer for {', '.join(missing)}; start `campaignflow worker --pool NAME` for {pools}",
        )
    counts = ", ".join(f"{q} {len(consumed[q])}" for q in queues)
    return Check("consumers", "ok", f"{len(replies)} worker(s); consumers per queue: {counts}")


def check_beat(url: str, settings: Settings, *, require: bool) -> Check:
    bad: Status = "FAIL" if require else "warn"
    try:
        with sql_engine(url).connect() as conn:
            beats = last_beats(conn)
    except sa.exc.DBAPIError as exc:
        return Check("beat", bad, f"cannot read the heartbeat table ({_first_line(exc.orig)})")
    now = datetime.now(UTC)
    ages = {name: (now - at).total_seconds() for name, at in beats.items()}
    seen = "; ".join(f"{n} at {iso_utc(beats[n])} ({a:.0f} s ago)" for n, a in sorted(ages.items()))
    ticks = [n for n in TICKS if n in ages]
    if not ticks:
        return Check("beat", bad, "no tick recorded yet; start exactly one `campaignflow beat`")
    name = ticks[0]  # "beat" (the campaign tick) first, else the sweeper
    limit = STALE_INTERVALS * float(getattr(settings, TICKS[name], 60.0))
    if ages[name] > limit:
        return Check("beat", bad, f"last tick {seen} (stale after {limit:.0f} s); is beat running?")
    return Check("beat", "ok", f"last tick {seen}")


def check_outbox(url: str, settings: Settings) -> Check:
    """The publications waiting for the broker: how many, and how old the oldest is. FAIL when it is
    older than the relay should have let it get (runs are not starting)."""
    try:
        with sql_engine(url).connect() as conn:
            count, oldest = outbox.backlog(conn)
    except sa.exc.DBAPIError as exc:
        return Check("outbox", "FAIL", f"cannot read the outbox ({_first_line(exc.orig)})")
    if count == 0 or oldest is None:
        return Check("outbox", "ok", "backlog 0: every run is published")
    age = (datetime.now(UTC) - oldest).total_seconds()
    limit = RELAY_GRACE.total_seconds() + STALE_INTERVALS * settings.relay_interval
    detail = f"backlog {count} publication(s), the oldest {age:.0f} s old (written {iso_utc(oldest)})"
    if age > limit:
        return Check(
            "outbox",
            "FAIL",
            f"{detail}; runs wait to start: the relay publishes them once the broker answers and beat "
            "runs (`campaignflow beat`)",
        )
    return Check("outbox", "ok", f"{detail}; the relay publishes them within {limit:.0f} s")


def run_checks(*, timeout: float = 2.0, require_beat: bool = False) -> list[Check]:
    """Every check, in order; a check that needs a failed one is reported FAIL without waiting."""
    app, registry = current().app, current().registry
    settings = get_settings()
    url = settings.effective_database_url()
    broker = check_broker(app, timeout)
    database = check_database(url)
    if broker.status == "FAIL":
        consumers = Check("consumers", "FAIL", "not checked: the broker is unreachable")
    else:
        consumers = check_consumers(app, registry.queue_names(), timeout)
    if database.status == "FAIL":
        migrations = Check("migrations", "FAIL", "not checked: the database is unreachable")
        beat = Check("beat", "FAIL" if require_beat else "warn", "not checked: the database is unreachable")
        backlog = Check("outbox", "FAIL", "not checked: the database is unreachable")
    else:
        migrations = check_migrations(url)
        beat = check_beat(url, settings, require=require_beat)
        backlog = check_outbox(url, settings)
    return [broker, database, migrations, consumers, beat, backlog]
