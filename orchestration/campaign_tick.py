"""The campaign tick: what beat's one static entry, ``campaignflow.campaign_tick``, runs.

:func:`tick`, for every enabled campaign, locks the campaign row (``FOR UPDATE SKIP LOCKED``: a
second beat's tick skips it), computes the slots due since ``last_slot_at`` (at most ``max_catchup``
of them, the newest), and ingests one event per audience member with the id
``campaign:<name>:<slot>:<index>``; it then records the slot (``campaign_slot`` primary key) and
moves ``last_slot_at`` in the same transaction. Two beats, a retried tick or a late tick never start
a slot twice: the lock and the slot key stop the second tick, and the ingest idempotency on the event
id gives the same runs if a tick died half-way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from orchestration.campaigns import CampaignManager, manager
from orchestration.rejected import EventRejectedError
from orchestration.schedules import campaign_t, due_slots
from orchestration.store import get_engine
from orchestration.store.control_models import CampaignSlot, Heartbeat
from orchestration.store.repository import utcnow

slot_t = cast(sa.Table, CampaignSlot.__table__)
heartbeat_t = cast(sa.Table, Heartbeat.__table__)


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
                "occurred_at": slot.isoformat(),
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
    slots: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat()}


def tick(now: datetime | None = None, campaigns: CampaignManager | None = None) -> TickReport:
    """Start every due slot of every enabled campaign, then write the ``beat`` heartbeat."""
    report = TickReport(at=now or utcnow())
    mgr = campaigns or manager()
    with get_engine().connect() as conn:
        ids = conn.execute(sa.select(campaign_t.c.id).where(campaign_t.c.enabled.is_(True))).scalars().all()
    for campaign_id in ids:
        _tick_campaign(campaign_id, report, mgr)
    _heartbeat(report)
    return report


def _tick_campaign(campaign_id: int, report: TickReport, mgr: CampaignManager) -> None:
    with get_engine().begin() as conn:
        row = conn.execute(
            sa.select(campaign_t)
            .where(campaign_t.c.id == campaign_id, campaign_t.c.enabled.is_(True))
            .with_for_update(skip_locked=True)
        ).first()
        if row is None:
            report.busy += 1
            return
        report.campaigns += 1
        slots, skipped = due_slots(row, report.at)
        report.slots_skipped += skipped
        for slot in slots:
            if not _claim_slot(conn, campaign_id, slot):
                continue
            runs = 0
            for event in slot_events(row, slot):
                try:
                    handle = mgr.ingest_event(event, mode="async")
                except EventRejectedError:
                    report.rejected += 1
                    continue
                runs += 1
                report.duplicates += handle.duplicate
            conn.execute(
                slot_t.update()
                .where(slot_t.c.campaign_id == campaign_id, slot_t.c.slot_at == slot)
                .values(runs=runs)
            )
            report.slots_started += 1
            report.runs_started += runs
            report.slots.append(f"{row.name}@{slot_key(slot)}")
        if slots:
            conn.execute(
                campaign_t.update()
                .where(campaign_t.c.id == campaign_id)
                .values(last_slot_at=max(slots), updated_at=utcnow())
            )


def _insert(conn: Connection, table: sa.Table) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _claim_slot(conn: Connection, campaign_id: int, slot: datetime) -> bool:
    stmt = (
        _insert(conn, slot_t)
        .values(campaign_id=campaign_id, slot_at=slot, runs=0)
        .on_conflict_do_nothing(index_elements=["campaign_id", "slot_at"])
        .returning(slot_t.c.slot_at)
    )
    return conn.execute(stmt).first() is not None


def _heartbeat(report: TickReport) -> None:
    detail = {k: v for k, v in report.as_dict().items() if k != "slots"}
    with get_engine().begin() as conn:
        stmt = _insert(conn, heartbeat_t).values(name="beat", beat_at=report.at, detail=detail)
        conn.execute(
            stmt.on_conflict_do_update(index_elements=["name"], set_={"beat_at": report.at, "detail": detail})
        )
