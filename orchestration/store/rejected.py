"""Rejected events: stored with the reason and the raw body, listed, and marked when replayed.

The body comes as :class:`~orchestration.store.jsontext.StoredJSON` (``raw``, ``raw_complete``,
``body_hash``), text any database takes whatever the event held."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestration.store.base import AnyRow, utcnow
from orchestration.store.tables import rejected_t


def insert_rejected(conn: Connection, values: dict[str, Any]) -> int:
    """Store a rejected event (``event_id``, ``raw``, ``raw_complete``, ``body_hash``, ``reason``,
    ``problems``); its id."""
    return int(conn.execute(rejected_t.insert().values(**values).returning(rejected_t.c.id)).scalar_one())


def update_rejected(conn: Connection, rejected_id: int, values: dict[str, Any]) -> None:
    conn.execute(rejected_t.update().where(rejected_t.c.id == rejected_id).values(**values))


def open_rejection(conn: Connection, event_id: str | None, body_hash: str) -> int | None:
    """The still-rejected row with the very same body (by its hash) and event id (or none), if any."""
    found = conn.execute(
        sa.select(rejected_t.c.id)
        .where(
            rejected_t.c.body_hash == body_hash,
            rejected_t.c.event_id.is_not_distinct_from(event_id),
            rejected_t.c.status == "rejected",
        )
        .order_by(rejected_t.c.id)
        .limit(1)
    ).scalar()
    return None if found is None else int(found)


def list_rejected(conn: Connection, status: str | None, limit: int) -> list[AnyRow]:
    """Newest first; only those of ``status`` when given."""
    query = sa.select(rejected_t).order_by(rejected_t.c.id.desc()).limit(limit)
    if status:
        query = query.where(rejected_t.c.status == status)
    return list(conn.execute(query))


def get_rejected(conn: Connection, rejected_id: int) -> AnyRow | None:
    return conn.execute(sa.select(rejected_t).where(rejected_t.c.id == rejected_id)).first()


def mark_replayed(conn: Connection, rejected_id: int, body: dict[str, Any], run_id: str) -> None:
    """The event became run ``run_id`` (from ``body``: the ``raw`` columns of its stored or
    corrected body)."""
    update_rejected(
        conn,
        rejected_id,
        {**body, "status": "replayed", "replay_run_id": run_id, "replayed_at": utcnow()},
    )
