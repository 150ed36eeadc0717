"""The timer poller: fires the due timers from Postgres (``campaignflow.engine.timers`` on beat
every ``CAMPAIGNFLOW_TIMER_INTERVAL`` seconds, or :func:`poll_loop` in a process with no beat: the
embedded default runs it in a thread).

One transaction per batch claims due timers (``FOR UPDATE SKIP LOCKED``: a second poller takes
other rows), marks them fired, wakes their runs (``waits.wake``: each run's row lock, its record,
its outbox row) and commits; then the batch's publications go to the broker (the fast path; the
outbox relay publishes what the broker did not take). A poller killed before its commit fired
nothing (the rows unlock, the next pass takes them); killed after it, its publications are in the
outbox. So two pollers never wake a run twice, and a killed one loses no timer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

from orchestration.engine import waits as engine_waits
from orchestration.engine.compiler import OrchestrationEngine
from orchestration.engine.context import flow_of
from orchestration.engine.publish import publish_committed
from orchestration.flows.model import SleepNode, WaitNode
from orchestration.names import RunStatus
from orchestration.store import outbox, sql_engine, waits
from orchestration.store import repository as repo
from orchestration.store.outage import describe, is_store_outage

log = logging.getLogger(__name__)

#: Timers one poller transaction claims.
TIMER_BATCH = 200
#: Batches one pass fires at most (the next pass goes on).
TIMER_MAX_BATCHES = 20


@dataclass
class TimerReport:
    #: Timers claimed and marked fired.
    fired: int = 0
    #: Runs woken (their continuation published or their run ended).
    woke: list[str] = field(default_factory=list)
    #: Timers that found nothing to wake (the run was signalled, cancelled or ended meanwhile).
    stale: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"fired": self.fired, "woke": len(self.woke), "stale": self.stale}


def fire_due(
    engine: OrchestrationEngine,
    *,
    now: datetime | None = None,
    batch: int = TIMER_BATCH,
    max_batches: int = TIMER_MAX_BATCHES,
) -> TimerReport:
    """Fire the timers due at ``now``, ``batch`` per transaction."""
    report = TimerReport()
    for _ in range(max_batches):
        at = now or datetime.now(UTC)
        entries, claimed = _fire_batch(at, batch, report)
        publish_committed(engine, entries)
        if claimed < batch:
            break
    return report


def poll_loop(engine: OrchestrationEngine, *, interval: float, stop: threading.Event) -> None:
    """Fire due timers every ``interval`` seconds until ``stop`` is set (a process with no beat: the
    embedded default). A store outage is logged and waited out; the next pass goes on."""
    while not stop.wait(interval):
        try:
            fire_due(engine)
        except Exception as exc:
            if not is_store_outage(exc):
                raise
            log.warning("timer poller: the run store is not reachable (%s); trying again", describe(exc))


@contextmanager
def polling(engine: OrchestrationEngine, interval: float) -> Iterator[None]:
    """:func:`poll_loop` in a daemon thread for the ``with`` block."""
    stop = threading.Event()
    thread = threading.Thread(
        target=poll_loop, args=(engine,), kwargs={"interval": interval, "stop": stop}, daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def _fire_batch(now: datetime, batch: int, report: TimerReport) -> tuple[list[outbox.Entry], int]:
    entries: list[outbox.Entry] = []
    with sql_engine().begin() as conn:
        timers = waits.claim_due(conn, now, batch)
        report.fired += len(timers)
        for timer in timers:
            woke, entry = _fire(conn, timer)
            if not woke:
                report.stale += 1
                continue
            report.woke.append(timer.run_id)
            if entry is not None:
                entries.append(entry)
    return entries, len(timers)


def _fire(conn: Connection, timer: waits.Timer) -> tuple[bool, outbox.Entry | None]:
    """Wake the timer's run if it still waits for this timer: (woke, its publication)."""
    row = repo.lock_run(conn, timer.run_id)
    if row is None or row.status != RunStatus.WAITING:
        return False, None
    state = repo.load_state(conn, timer.run_id)
    _flow, index = flow_of(state)
    node = index.get(timer.node_id)
    if not isinstance(node, SleepNode | WaitNode):
        return False, None
    if timer.kind == waits.SLEEP:
        if state.statuses.get(timer.node_id) != "running":
            return False, None
        return True, engine_waits.wake(conn, state, node)
    wait = waits.open_wait_of(conn, timer.run_id, node_id=timer.node_id)
    if wait is None:
        return False, None
    waits.close_wait(conn, wait.id, "timed_out")
    return True, engine_waits.wake(conn, state, node, timed_out=True)
