"""Retention: delete what is old enough, in batches that never lock the hot tables.

``campaignflow runs|rejected|deadletters purge`` call the ``purge_*`` functions; the beat entry
``campaignflow-retention`` calls :func:`apply_retention`, which purges what the
``CAMPAIGNFLOW_RETENTION_*`` settings say (nothing when they are unset) and folds the run counters.
Each batch (``BATCH`` rows, picked with ``FOR UPDATE SKIP LOCKED``) is its own short transaction
(``orchestration.store.retention``). Runs still ``queued`` or ``running`` are never purged; the run
counters (``campaignflow_runs_*_total``) keep counting what was purged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from orchestration.errors import FieldError
from orchestration.names import RETENTION_HEARTBEAT
from orchestration.settings import Settings
from orchestration.store import counters, retention, sql_engine
from orchestration.store.base import utcnow
from orchestration.store.heartbeats import beat
from orchestration.timefmt import iso_utc

#: Rows deleted per transaction.
BATCH = 1000
#: Batches of each kind one retention run deletes at most (the next run goes on): a first run
#: over a large backlog does not hold a worker slot for long.
MAX_BATCHES = 100

Batch = Callable[[Connection, int], retention.Purged]


@dataclass(frozen=True)
class PurgeReport:
    """What a purge deleted (or, with ``dry_run``, would delete)."""

    #: ``runs``, ``rejected`` or ``dead_letters``.
    kind: str
    purged: int
    #: Only set for runs: their step records, deleted with them.
    step_records: int | None
    dry_run: bool
    #: The cut-off: what ended, came or was last seen before it (None: any time, ``deadletters --all``).
    before: datetime | None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"purged": self.purged}
        if self.step_records is not None:
            data["step_records"] = self.step_records
        return {**data, "dry_run": self.dry_run, "before": iso_utc(self.before)}


def _batches(batch: Batch, size: int, max_batches: int | None) -> retention.Purged:
    """Run ``batch`` in one short transaction after another until one deletes fewer than ``size``."""
    rows = steps = done = 0
    while max_batches is None or done < max_batches:
        with sql_engine().begin() as conn:
            got = batch(conn, size)
        rows, steps, done = rows + got.rows, steps + got.step_records, done + 1
        if got.rows < size:
            break
    return retention.Purged(rows, steps)


def purge_runs(
    older_than: timedelta,
    statuses: Sequence[str] | None = None,
    *,
    dry_run: bool = False,
    batch: int = BATCH,
    max_batches: int | None = None,
    now: datetime | None = None,
) -> PurgeReport:
    """Delete finished runs (``statuses``, default every terminal one) that ended longer than
    ``older_than`` ago, with their step records and event keys."""
    try:
        wanted = retention.terminal(statuses)
    except ValueError as exc:
        raise FieldError([f"statuses: {exc}"], subject="purge") from exc
    before = (now or utcnow()) - older_than
    if dry_run:
        with sql_engine().connect() as conn:
            found = retention.count_runs(conn, before, wanted)
    else:
        found = _batches(lambda conn, n: retention.purge_runs(conn, before, wanted, n), batch, max_batches)
    return PurgeReport("runs", found.rows, found.step_records, dry_run, before)


def purge_rejected(
    older_than: timedelta,
    statuses: Sequence[str] | None = None,
    *,
    dry_run: bool = False,
    batch: int = BATCH,
    max_batches: int | None = None,
    now: datetime | None = None,
) -> PurgeReport:
    """Delete rejected events (``statuses``: ``rejected``, ``replayed``; default both) received
    longer than ``older_than`` ago."""
    before = (now or utcnow()) - older_than
    if dry_run:
        with sql_engine().connect() as conn:
            found = retention.count_rejected(conn, before, statuses)
    else:
        found = _batches(
            lambda conn, n: retention.purge_rejected(conn, before, statuses, n), batch, max_batches
        )
    return PurgeReport("rejected", found.rows, None, dry_run, before)


def purge_dead_letters(
    older_than: timedelta | None,
    statuses: Sequence[str] | None = None,
    *,
    dry_run: bool = False,
    batch: int = BATCH,
    max_batches: int | None = None,
    now: datetime | None = None,
) -> PurgeReport:
    """Delete dead letters (``statuses``: ``dead``, ``replayed``; default both) last seen longer
    than ``older_than`` ago (every one when None)."""
    before = None if older_than is None else (now or utcnow()) - older_than
    if dry_run:
        with sql_engine().connect() as conn:
            found = retention.count_dead_letters(conn, before, statuses)
    else:
        found = _batches(
            lambda conn, n: retention.purge_dead_letters(conn, before, statuses, n), batch, max_batches
        )
    return PurgeReport("dead_letters", found.rows, None, dry_run, before)


def fold_counters(batch: int = 10_000, max_batches: int = MAX_BATCHES) -> int:
    """Fold the run counters' rows (one per transition) into one per flow, kind and status."""
    folded = 0
    for _ in range(max_batches):
        with sql_engine().begin() as conn:
            got = counters.fold(conn, batch)
        folded += got
        if got < batch:
            break
    return folded


@dataclass
class RetentionReport:
    """What one retention run did: a report per purged kind, and the counter rows folded."""

    purged: list[PurgeReport] = field(default_factory=list)
    counter_rows_folded: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "purged": {p.kind: p.as_dict() for p in self.purged},
            "counter_rows_folded": self.counter_rows_folded,
        }


def apply_retention(settings: Settings, *, max_batches: int = MAX_BATCHES) -> RetentionReport:
    """Purge what the ``CAMPAIGNFLOW_RETENTION_*`` settings say is too old (each unset one keeps
    everything of its kind), fold the run counters, and record a ``retention`` heartbeat."""
    report = RetentionReport()
    if settings.retention_runs is not None:
        report.purged.append(purge_runs(settings.retention_runs, max_batches=max_batches))
    if settings.retention_rejected is not None:
        report.purged.append(purge_rejected(settings.retention_rejected, max_batches=max_batches))
    if settings.retention_dead_letters is not None:
        report.purged.append(purge_dead_letters(settings.retention_dead_letters, max_batches=max_batches))
    report.counter_rows_folded = fold_counters()
    with sql_engine().begin() as conn:
        beat(conn, RETENTION_HEARTBEAT, utcnow(), report.as_dict())
    return report
