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
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from orchestration.control.campaigns import campaign_t, due_slots
from orchestration.control.manager import CampaignManager, manager
from orchestration.control.rejected import EventRejectedError
from orchestration.names import BEAT_HEARTBEAT
from orchestration.store import get_engine
from orchestration.store.control_models import CampaignSlot, Heartbeat
from orchestration.store.repository import utcnow
from orchestration.timefmt import iso_utc

slot_t = cast(sa.Table, CampaignSlot.__table__)
heartbeat_t = cast(sa.Table, Heartbeat.__table__)
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
    with get_engine().connect() as conn:
        ids = conn.execute(sa.select(campaign_t.c.id).where(campaign_t.c.enabled.is_(True))).scalars().all()
    for campaign_id in ids:
        row, claimed = _claim_due_slots(campaign_id, report)
        for slot in claimed:
            _start_slot(row, slot, report, mgr)
    _heartbeat(report)
    return report


def _claim_due_slots(campaign_id: int, report: TickReport) -> tuple[Any, list[datetime]]:
    """In one short transaction: lock the campaign, claim its due slots, move ``last_slot_at``."""
    with get_engine().begin() as conn:
        row = conn.execute(
            sa.select(campaign_t)
            .where(campaign_t.c.id == campaign_id, campaign_t.c.enabled.is_(True))
            .with_for_update(skip_locked=True)
        ).first()
        if row is None:
            report.busy += 1
            return None, []
        report.campaigns += 1
        slots, skipped = due_slots(row, report.at)
        report.slots_skipped += skipped
        claimed = [slot for slot in slots if _claim_slot(conn, campaign_id, slot)]
        if slots:
            conn.execute(
                campaign_t.update()
                .where(campaign_t.c.id == campaign_id)
                .values(last_slot_at=max(slots), updated_at=utcnow())
            )
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
    with get_engine().begin() as conn:
        conn.execute(
            slot_t.update().where(slot_t.c.campaign_id == row.id, slot_t.c.slot_at == slot).values(runs=runs)
        )
    report.slots_started += 1
    report.runs_started += runs
    report.slots.append(f"{row.name}@{slot_key(slot)}")


def _resume_stale_slots(report: TickReport, mgr: CampaignManager) -> None:
    """Finish slots a tick claimed but did not mark done within ``SLOT_LEASE`` (it died half-way)."""
    now = utcnow()
    with get_engine().begin() as conn:
        stale = conn.execute(
            slot_t.update()
            .where(slot_t.c.runs == IN_PROGRESS, slot_t.c.created_at < now - SLOT_LEASE)
            .values(created_at=now)
            .returning(slot_t.c.campaign_id, slot_t.c.slot_at)
        ).all()
        rows = {
            r.id: r
            for r in conn.execute(
                sa.select(campaign_t).where(campaign_t.c.id.in_({s.campaign_id for s in stale}))
            )
        }
    for s in stale:
        report.resumed += 1
        slot = s.slot_at if s.slot_at.tzinfo else s.slot_at.replace(tzinfo=UTC)
        _start_slot(rows[s.campaign_id], slot, report, mgr)


def _insert(conn: Connection, table: sa.Table) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _claim_slot(conn: Connection, campaign_id: int, slot: datetime) -> bool:
    stmt = (
        _insert(conn, slot_t)
        .values(campaign_id=campaign_id, slot_at=slot, runs=IN_PROGRESS, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["campaign_id", "slot_at"])
        .returning(slot_t.c.slot_at)
    )
    return conn.execute(stmt).first() is not None


def _heartbeat(report: TickReport) -> None:
    detail = {k: v for k, v in report.as_dict().items() if k != "slots"}
    with get_engine().begin() as conn:
        stmt = _insert(conn, heartbeat_t).values(name=BEAT_HEARTBEAT, beat_at=report.at, detail=detail)
        conn.execute(
            stmt.on_conflict_do_update(index_elements=["name"], set_={"beat_at": report.at, "detail": detail})
        )
