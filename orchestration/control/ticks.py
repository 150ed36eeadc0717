"""The campaign tick: what beat's one static entry, ``campaignflow.campaign_tick``, runs.

:func:`tick`, for every enabled campaign, locks the campaign row (``FOR UPDATE SKIP LOCKED``: a
second beat's tick skips it), computes the slots due since ``last_slot_at`` (at most ``max_catchup``
of them, the newest), and ingests one event per audience member with the id
``campaign:<name>:<slot>:<index>``. Claiming is one short transaction: lock, insert the slot rows
(``campaign_slot`` primary key, ``runs = -1`` while in progress), move ``last_slot_at``, commit; the
events are ingested after it, and the slot gets its run count. Two beats, a retried tick or a late
tick never start a slot twice: the lock and the slot key stop the second tick. A tick that died
after claiming leaves its slot in progress; after ``SLOT_LEASE`` the next tick ingests the slot's
events again, and the ingest idempotency on the event ids gives the runs already started.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestration.control.campaigns import due_slots
from orchestration.control.manager import CampaignManager, manager
from orchestration.control.rejected import EventRejectedError
from orchestration.names import BEAT_HEARTBEAT
from orchestration.store import campaigns as store
from orchestration.store import sql_engine
from orchestration.store.base import utcnow
from orchestration.store.heartbeats import beat
from orchestration.timefmt import iso_utc

#: ``campaign_slot.runs`` of a claimed slot whose events are not all ingested yet.
IN_PROGRESS = -1
#: A slot still in progress after this long was left by a tick that died; the next tick finishes it.
SLOT_LEASE = timedelta(minutes=5)


def slot_key(slot: datetime) -> str:
    return slot.astimezone(UTC).isoformat().replace("+00:00", "Z")


def slot_events(row: Any, slot: datetime) -> list[dict[str, Any]]:
    """One event per audience member (one event when the campaign has no audience)."""
    audience: list[Any] = [None] if row.audience is None else list(row.audience)
    template = dict(row.event_template or {})
    events = []
    for index, member in enumerate(audience):
        payload = (
            {**template, **member}
            if isinstance(member, dict)
            else template
            if member is None
            else {**template, "member": member}
        )
        events.append(
            {
                "id": f"campaign:{row.name}:{slot_key(slot)}:{index}",
                "type": row.event_type,
                "campaign": row.name,
                "payload": payload,
                "occurred_at": iso_utc(slot),
            }
        )
    return events


@dataclass
class TickReport:
    at: datetime
    campaigns: int = 0
    busy: int = 0
    slots_started: int = 0
    slots_skipped: int = 0
    runs_started: int = 0
    duplicates: int = 0
    rejected: int = 0
    resumed: int = 0
    slots: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "at": iso_utc(self.at)}


def tick(now: datetime | None = None, campaigns: CampaignManager | None = None) -> TickReport:
    """Start every due slot of every enabled campaign, then write the ``beat`` heartbeat."""
    report = TickReport(at=now or utcnow())
    mgr = campaigns or manager()
    _resume_stale_slots(report, mgr)
    with sql_engine().connect() as conn:
        ids = store.enabled_campaign_ids(conn)
    for campaign_id in ids:
        row, claimed = _claim_due_slots(campaign_id, report)
        for slot in claimed:
            _start_slot(row, slot, report, mgr)
    _heartbeat(report)
    return report


def _claim_due_slots(campaign_id: int, report: TickReport) -> tuple[Any, list[datetime]]:
    """In one short transaction: lock the campaign, claim its due slots, move ``last_slot_at``."""
    with sql_engine().begin() as conn:
        row = store.lock_enabled_campaign(conn, campaign_id)
        if row is None:
            report.busy += 1
            return None, []
        report.campaigns += 1
        slots, skipped = due_slots(row, report.at)
        report.slots_skipped += skipped
        claimed = [slot for slot in slots if store.claim_slot(conn, campaign_id, slot, IN_PROGRESS)]
        if slots:
            store.set_last_slot(conn, campaign_id, max(slots))
    return row, claimed


def _start_slot(row: Any, slot: datetime, report: TickReport, mgr: CampaignManager) -> None:
    """Ingest the slot's events (idempotent on their ids), then mark the slot done with its run count."""
    runs = 0
    for event in slot_events(row, slot):
        try:
            handle = mgr.ingest_event(event, mode="async")
        except EventRejectedError:
            report.rejected += 1  # stored as a rejected event, replayable
            continue
        runs += 1
        report.duplicates += handle.duplicate
    with sql_engine().begin() as conn:
        store.set_slot_runs(conn, row.id, slot, runs)
    report.slots_started += 1
    report.runs_started += runs
    report.slots.append(f"{row.name}@{slot_key(slot)}")


def _resume_stale_slots(report: TickReport, mgr: CampaignManager) -> None:
    """Finish slots a tick claimed but did not mark done within ``SLOT_LEASE`` (it died half-way)."""
    with sql_engine().begin() as conn:
        stale = store.reclaim_slots(conn, IN_PROGRESS, utcnow() - SLOT_LEASE)
        rows = store.campaigns_by_id(conn, {campaign_id for campaign_id, _slot in stale})
    for campaign_id, slot in stale:
        report.resumed += 1
        _start_slot(rows[campaign_id], slot, report, mgr)


def _heartbeat(report: TickReport) -> None:
    detail = {k: v for k, v in report.as_dict().items() if k != "slots"}
    with sql_engine().begin() as conn:
        beat(conn, BEAT_HEARTBEAT, report.at, detail)
