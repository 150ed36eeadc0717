"""The suppression list: addresses that are not sent to, and the log of every change to it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestration.store.base import AnyRow, aware, utcnow
from orchestration.store.queries import queries
from orchestration.store.tables import suppression_log_t, suppression_t


@dataclass(frozen=True)
class Entry:
    address: str
    reason: str
    source: str
    detail: str | None
    created_at: datetime


def _entry(row: AnyRow) -> Entry:
    return Entry(row.address, row.reason, row.source, row.detail, aware(row.created_at))


def find(conn: Connection, address: str) -> Entry | None:
    row = conn.execute(sa.select(suppression_t).where(suppression_t.c.address == address)).first()
    return None if row is None else _entry(row)


def add(conn: Connection, address: str, reason: str, source: str, detail: str | None = None) -> bool:
    """Suppress ``address`` (already lower case); False when it already was (the first reason
    stays). Either way the request is logged."""
    now = utcnow()
    values = {"address": address, "reason": reason, "source": source, "detail": detail, "created_at": now}
    stmt = (
        queries(conn)
        .insert(suppression_t)
        .values(values)
        .on_conflict_do_nothing(index_elements=["address"])
        .returning(suppression_t.c.address)
    )
    added = conn.execute(stmt).first() is not None
    _log(conn, address, "add" if added else "again", reason, source, detail, now)
    return added


def remove(conn: Connection, address: str, source: str, detail: str | None = None) -> Entry | None:
    """Take ``address`` off the list; the entry it had, or None when it was not on it."""
    entry = find(conn, address)
    if entry is None:
        return None
    conn.execute(suppression_t.delete().where(suppression_t.c.address == address))
    _log(conn, address, "remove", entry.reason, source, detail, utcnow())
    return entry


def entries(conn: Connection, *, reason: str | None = None, limit: int = 100) -> list[Entry]:
    """Newest first."""
    query = sa.select(suppression_t).order_by(suppression_t.c.created_at.desc(), suppression_t.c.address)
    if reason is not None:
        query = query.where(suppression_t.c.reason == reason)
    return [_entry(r) for r in conn.execute(query.limit(limit))]


def log(conn: Connection, address: str) -> list[AnyRow]:
    """The changes of ``address``, oldest first: ``action``, ``reason``, ``source``, ``detail``, ``at``."""
    query = sa.select(suppression_log_t).where(suppression_log_t.c.address == address)
    return list(conn.execute(query.order_by(suppression_log_t.c.id)))


def _log(
    conn: Connection,
    address: str,
    action: str,
    reason: str | None,
    source: str,
    detail: str | None,
    at: datetime,
) -> None:
    values = {"address": address, "action": action, "reason": reason, "source": source, "detail": detail}
    conn.execute(suppression_log_t.insert().values(**values, at=at))
