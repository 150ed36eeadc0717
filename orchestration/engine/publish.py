"""Publishing a run through the outbox (``orchestration.store.outbox``).

Whoever opens, retries or re-drives a run writes the run and its publication's outbox row in one
transaction, then calls :func:`publish_now` right after the commit (the fast path): it publishes the
run's canvas and marks the row. When the broker cannot take it, the run stays stored and ``queued``
with its publication pending, one log line says so, and nothing is raised. :func:`relay` (beat sends
``campaignflow.engine.relay`` every ``CAMPAIGNFLOW_RELAY_INTERVAL`` seconds) publishes what is still
pending after :data:`RELAY_GRACE`, in batches that a second relay skips.

A publication may reach the broker twice: the process died, or the store went away, between
publishing and marking, and the relay publishes it again. The first tasks of every published canvas
therefore take the publication with their publish's token (``orchestration.engine.starts``): only
one copy of a publication goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import redis
from kombu.exceptions import OperationalError as KombuOperationalError

from orchestration.engine.compiler import OrchestrationEngine
from orchestration.flows.model import Flow
from orchestration.store import outbox, sql_engine
from orchestration.store.base import utcnow
from orchestration.store.db import autocommit
from orchestration.store.outage import describe, is_store_outage

log = logging.getLogger(__name__)

#: What a publish raises when the broker cannot be reached (kombu wraps most of them).
BROKER_ERRORS: tuple[type[Exception], ...] = (
    KombuOperationalError,
    redis.ConnectionError,
    redis.TimeoutError,
    OSError,
)
#: The fast path tries an unreachable broker once more (a stale pooled connection), then leaves the
#: publication to the relay: the caller waits a fraction of a second, not Celery's default retries.
FAST_RETRY_POLICY: dict[str, float] = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
#: The relay leaves younger publications to the process that wrote them (its fast path).
RELAY_GRACE = timedelta(seconds=5)
#: Publications one relay transaction claims.
RELAY_BATCH = 100
#: Batches one relay pass publishes at most (the next pass goes on).
RELAY_MAX_BATCHES = 50


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def publish_now(
    engine: OrchestrationEngine,
    entry: outbox.Entry,
    flow: Flow,
    deadline_at: datetime | None,
    priority: int = 0,
) -> bool:
    """The fast path, right after the commit that wrote ``entry``: publish the run and mark the entry.

    Returns False when the broker could not take it: the entry stays pending for the relay, the
    failure is counted on it, and one warning says so. Nothing is raised for an unreachable broker
    or, once published, for a store that cannot take the mark (the relay publishes it again and the
    copy stops at its first task)."""
    try:
        engine.start(
            flow,
            entry.run_id,
            deadline_at,
            publication=entry.publication,
            retry_policy=FAST_RETRY_POLICY,
            priority=priority,
            **resume_of(entry),
        )
    except BROKER_ERRORS as exc:
        reason = one_line(exc)
        log.warning(
            "run %s stored, its publication pending: the broker is not reachable (%s); the relay "
            "publishes it when the broker answers",
            entry.run_id,
            reason,
        )
        _record_failure(entry, reason)
        return False
    try:
        with autocommit() as conn:
            outbox.mark_published(conn, entry.id)
    except Exception as exc:
        if not is_store_outage(exc):
            raise
        log.warning(
            "run %s published, not marked (the run store is not reachable: %s); the relay publishes it "
            "again and the copy stops at its first task",
            entry.run_id,
            describe(exc),
        )
    return True


def publish_committed(engine: OrchestrationEngine, entries: list[outbox.Entry]) -> None:
    """The fast path for publications a transaction just committed: each run's flow snapshot,
    deadline and priority read in one statement, then :func:`publish_now` for each entry."""
    if not entries:
        return
    with sql_engine().connect() as conn:
        runs = outbox.runs_to_publish(conn, {e.run_id for e in entries})
    flows: dict[str, Flow] = {}
    for entry in entries:
        run = runs[entry.run_id]
        key = repr(run.flow_def)
        flow = flows.get(key) or flows.setdefault(key, Flow.model_validate(run.flow_def))
        publish_now(engine, entry, flow, run.deadline_at, run.priority)


def resume_of(entry: outbox.Entry) -> dict[str, Any]:
    """A wake-up's publication publishes the continuation after its parking node."""
    if entry.resume is None:
        return {}
    return {"resume": entry.resume, "timed_out": entry.kind == outbox.TIMEOUT}


def _record_failure(entry: outbox.Entry, reason: str) -> None:
    try:
        with autocommit() as conn:
            outbox.record_failure(conn, entry.id, reason)
    except Exception as exc:
        if not is_store_outage(exc):
            raise  # only an outage may lose the count; the entry is pending either way


@dataclass
class RelayReport:
    published: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    #: Why the pass stopped early (the broker is not reachable), if it did.
    stopped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Counts (what the relay task returns and its worker logs)."""
        return {"published": len(self.published), "failed": len(self.failed), "stopped": self.stopped}


def relay(
    engine: OrchestrationEngine,
    *,
    now: datetime | None = None,
    grace: timedelta = RELAY_GRACE,
    batch: int = RELAY_BATCH,
    max_batches: int = RELAY_MAX_BATCHES,
) -> RelayReport:
    """Publish the outbox entries still pending ``grace`` after they were written, oldest first, one
    claimed batch per transaction. Stops at the first publish the broker refuses (the rest stays
    pending for the next pass); an entry that cannot be published for another reason is counted,
    logged, and left pending."""
    before = (now or utcnow()) - grace
    report = RelayReport()
    try:
        for _ in range(max_batches):
            if not _relay_batch(engine, before, batch, report):
                break
    except Exception as exc:
        if not is_store_outage(exc):
            raise
        report.stopped = f"the run store is not reachable ({describe(exc)})"
    if report.stopped is not None:
        log.warning("outbox relay stopped: %s; pending publications wait for the next pass", report.stopped)
    return report


def _relay_batch(engine: OrchestrationEngine, before: datetime, batch: int, report: RelayReport) -> bool:
    """Claim, publish and mark one batch in one transaction; True when another may follow."""
    with sql_engine().begin() as conn:
        entries = outbox.claim(conn, before, batch)
        runs = outbox.runs_to_publish(conn, {e.run_id for e in entries})
        for entry in entries:
            failure = _publish_claimed(engine, entry, runs[entry.run_id])
            if failure is None:
                outbox.mark_published(conn, entry.id)
                report.published.append(entry.run_id)
                continue
            outbox.record_failure(conn, entry.id, failure.reason)
            report.failed.append(entry.run_id)
            if failure.broker:
                report.stopped = f"the broker is not reachable ({failure.reason})"
                return False
    return len(entries) == batch


@dataclass(frozen=True)
class _Failure:
    reason: str
    #: True when the broker could not be reached (no use trying the next entry now).
    broker: bool


def _publish_claimed(
    engine: OrchestrationEngine, entry: outbox.Entry, run: outbox.RunToPublish
) -> _Failure | None:
    """Publish one claimed entry; None when published."""
    try:
        flow = Flow.model_validate(run.flow_def)
        engine.start(
            flow,
            entry.run_id,
            run.deadline_at,
            publication=entry.publication,
            priority=run.priority,
            **resume_of(entry),
        )
    except BROKER_ERRORS as exc:
        return _Failure(one_line(exc), broker=True)
    except Exception as exc:  # this entry cannot be published (e.g. its flow no longer compiles here)
        log.error("outbox relay: run %s cannot be published: %s", entry.run_id, one_line(exc))
        return _Failure(one_line(exc), broker=False)
    return None
