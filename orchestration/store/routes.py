"""Routing rules kept in the database (``campaignflow routes add``)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestration.store.base import AnyRow
from orchestration.store.tables import route_t


def list_routes(conn: Connection) -> list[AnyRow]:
    """Every rule, oldest first: ``id``, ``event_type``, ``campaign``, ``orchestrator``, ``flow``."""
    return list(conn.execute(sa.select(route_t).order_by(route_t.c.id)))


def insert_route(conn: Connection, values: dict[str, Any]) -> int:
    return int(conn.execute(route_t.insert().values(**values).returning(route_t.c.id)).scalar_one())


def delete_route(conn: Connection, route_id: int) -> bool:
    """False when there is no such rule."""
    return bool(conn.execute(route_t.delete().where(route_t.c.id == route_id)).rowcount)
