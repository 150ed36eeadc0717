"""Campaigns and their slots: the campaign store, and the claims a tick makes on due slots.

A slot row (``campaign_slot``, keyed by campaign and slot time) is claimed once: the second claim
of the same slot finds the key taken. While its events are being ingested its ``runs`` is a marker
(the tick's ``IN_PROGRESS``); then it holds the number of runs started.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from orchestration.store.base import AnyRow, aware, utcnow
from orchestration.store.queries import queries
from orchestration.store.tables import campaign_t, slot_t


def insert_campaign(conn: Connection, values: dict[str, Any]) -> int | None:
    """Insert a campaign; its id, or None when a campaign of that name exists."""
    try:
        with conn.begin_nested():
            return int(
                conn.execute(campaign_t.insert().values(**values).returning(campaign_t.c.id)).scalar_one()
            )
    except IntegrityError:
        return None


def replace_campaign(conn: Connection, name: str, values: dict[str, Any]) -> int | None:
    """Update the campaign called ``name``; its id, or None when there is none."""
    done = conn.execute(
        campaign_t.update()
        .where(campaign_t.c.name == name)
        .values(**values, updated_at=utcnow())
        .returning(campaign_t.c.id)
    ).first()
    return None if done is None else int(done.id)


def list_campaigns(conn: Connection) -> list[dict[str, Any]]:
    """Every campaign as a dict of its columns, by name."""
    return [dict(r._mapping) for r in conn.execute(sa.select(campaign_t).order_by(campaign_t.c.name))]


def get_campaign(conn: Connection, name: str) -> dict[str, Any] | None:
    """The campaign called ``name`` as a dict of its columns, or None."""
    row = conn.execute(sa.select(campaign_t).where(campaign_t.c.name == name)).first()
    return None if row is None else dict(row._mapping)


def delete_campaign(conn: Connection, name: str) -> bool:
    """Delete the campaign called ``name`` (its slots go with it); False when there is none."""
    return bool(conn.execute(campaign_t.delete().where(campaign_t.c.name == name)).rowcount)


def campaign_names(conn: Connection) -> list[str]:
    return list(conn.execute(sa.select(campaign_t.c.name).order_by(campaign_t.c.name)).scalars())


def set_enabled(conn: Connection, name: str, enabled: bool) -> bool:
    """Pause or resume; False when there is no such campaign. A resumed campaign's schedule goes on
    from now: the slots that fell while it was paused are not caught up."""
    values: dict[str, Any] = {"enabled": enabled, "updated_at": utcnow()}
    if enabled:
        values["last_slot_at"] = sa.case(
            (campaign_t.c.enabled.is_(False), utcnow()), else_=campaign_t.c.last_slot_at
        )
    return bool(conn.execute(campaign_t.update().where(campaign_t.c.name == name).values(**values)).rowcount)


def enabled_campaign_ids(conn: Connection) -> list[int]:
    return [
        int(i)
        for i in conn.execute(sa.select(campaign_t.c.id).where(campaign_t.c.enabled.is_(True))).scalars()
    ]


def lock_enabled_campaign(conn: Connection, campaign_id: int) -> AnyRow | None:
    """The campaign's row, locked for this transaction; None when it is disabled, gone, or locked by
    another transaction (``SKIP LOCKED``: a second beat's tick skips it)."""
    return conn.execute(
        sa.select(campaign_t)
        .where(campaign_t.c.id == campaign_id, campaign_t.c.enabled.is_(True))
        .with_for_update(skip_locked=True)
    ).first()


def campaigns_by_id(conn: Connection, ids: Collection[int]) -> dict[int, AnyRow]:
    return {r.id: r for r in conn.execute(sa.select(campaign_t).where(campaign_t.c.id.in_(set(ids))))}


def set_last_slot(conn: Connection, campaign_id: int, slot_at: datetime) -> None:
    conn.execute(
        campaign_t.update()
        .where(campaign_t.c.id == campaign_id)
        .values(last_slot_at=slot_at, updated_at=utcnow())
    )


def claim_slot(conn: Connection, campaign_id: int, slot_at: datetime, runs: int) -> bool:
    """Insert the slot's row with ``runs``; False when the slot was claimed before."""
    stmt = (
        queries(conn)
        .insert(slot_t)
        .values(campaign_id=campaign_id, slot_at=slot_at, runs=runs, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["campaign_id", "slot_at"])
        .returning(slot_t.c.slot_at)
    )
    return conn.execute(stmt).first() is not None


def set_slot_runs(conn: Connection, campaign_id: int, slot_at: datetime, runs: int) -> None:
    conn.execute(
        slot_t.update()
        .where(slot_t.c.campaign_id == campaign_id, slot_t.c.slot_at == slot_at)
        .values(runs=runs)
    )


def reclaim_slots(conn: Connection, runs: int, claimed_before: datetime) -> list[tuple[int, datetime]]:
    """Slots still at ``runs`` that were claimed before ``claimed_before``: claimed again now (their
    claim time moves to now); ``(campaign_id, slot_at)`` of each."""
    rows = conn.execute(
        slot_t.update()
        .where(slot_t.c.runs == runs, slot_t.c.created_at < claimed_before)
        .values(created_at=utcnow())
        .returning(slot_t.c.campaign_id, slot_t.c.slot_at)
    ).all()
    return [(int(r.campaign_id), aware(r.slot_at)) for r in rows]
