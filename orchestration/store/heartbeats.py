"""Heartbeats: the last time a periodic component (beat's campaign tick, the sweeper) did its work."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestration.store.base import aware
from orchestration.store.queries import queries
from orchestration.store.tables import heartbeat_t


def beat(conn: Connection, name: str, at: datetime, detail: Mapping[str, Any]) -> None:
    """Record that ``name`` worked at ``at`` (one row per name, replaced)."""
    detail = dict(detail)
    stmt = queries(conn).insert(heartbeat_t).values(name=name, beat_at=at, detail=detail)
    conn.execute(stmt.on_conflict_do_update(index_elements=["name"], set_={"beat_at": at, "detail": detail}))


def last_beats(conn: Connection) -> dict[str, datetime]:
    """The last beat of every component that ever beat."""
    rows = conn.execute(sa.select(heartbeat_t.c.name, heartbeat_t.c.beat_at))
    return {str(r.name): aware(r.beat_at) for r in rows}
