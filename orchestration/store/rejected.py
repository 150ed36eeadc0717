"""Rejected events: stored with the reason and the raw body, listed, and marked when replayed."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestration.store.base import AnyRow, utcnow
from orchestration.store.tables import rejected_t


def insert_rejected(conn: Connection, values: dict[str, Any]) -> int:
    """Store a rejected event (``event_id``, ``raw``, ``reason``, ``problems``); its id."""
    return int(conn.execute(rejected_t.insert().values(**values).returning(rejected_t.c.id)).scalar_one())


def update_rejected(conn: Connection, rejected_id: int, values: dict[str, Any]) -> None:
    conn.execute(rejected_t.update().where(rejected_t.c.id == rejected_id).values(**values))


def open_rejection(conn: Connection, event_id: str, raw: Any) -> int | None:
    """The still-rejected row of this event id with the very same body, if there is one."""
    rows = conn.execute(
        sa.select(rejected_t.c.id, rejected_t.c.raw).where(
            rejected_t.c.event_id == event_id, rejected_t.c.status == "rejected"
        )
    ).all()
    return next((int(r.id) for r in rows if r.raw == raw), None)


def list_rejected(conn: Connection, status: str | None, limit: int) -> list[AnyRow]:
    """Newest first; only those of ``status`` when given."""
    query = sa.select(rejected_t).order_by(rejected_t.c.id.desc()).limit(limit)
    if status:
        query = query.where(rejected_t.c.status == status)
    return list(conn.execute(query))


def get_rejected(conn: Connection, rejected_id: int) -> AnyRow | None:
    return conn.execute(sa.select(rejected_t).where(rejected_t.c.id == rejected_id)).first()


def mark_replayed(conn: Connection, rejected_id: int, raw: Any, run_id: str) -> None:
    """The event became run ``run_id`` (from ``raw``, its stored or corrected body)."""
    update_rejected(
        conn,
        rejected_id,
        {"status": "replayed", "raw": raw, "replay_run_id": run_id, "replayed_at": utcnow()},
    )
