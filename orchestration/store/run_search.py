"""Finding runs by filter: a page of them in keyset order (newest first), their count, their ids.

A page is ordered by ``(created_at, run_id)`` descending and continues strictly after the last row
of the previous page (``after``), so paging stays correct while new runs arrive and costs the same
on page 1 and page 10,000 (the ``(created_at, run_id)`` index).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestration.store.envelopes import SUMMARY_COLUMNS, RunSummary, summary
from orchestration.store.tables import run_t

Query = TypeVar("Query", bound=sa.Select[Any])


@dataclass(frozen=True)
class RunFilter:
    """Which runs: every field that is set must match (``text``: a substring of the payload's JSON)."""

    statuses: tuple[str, ...] = ()
    flow: str | None = None
    campaign: str | None = None
    event_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    text: str | None = None


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _where(query: Query, f: RunFilter) -> Query:
    if f.statuses:
        query = query.where(run_t.c.status.in_(f.statuses))
    if f.flow:
        query = query.where(run_t.c.flow_name == f.flow)
    if f.campaign:
        query = query.where(run_t.c.campaign == f.campaign)
    if f.event_id:
        query = query.where(run_t.c.event_id == f.event_id)
    if f.created_after:
        query = query.where(run_t.c.created_at >= f.created_after)
    if f.created_before:
        query = query.where(run_t.c.created_at < f.created_before)
    if f.text:
        query = query.where(sa.cast(run_t.c.payload, sa.Text).ilike(_like(f.text), escape="\\"))
    return query


def page_runs(
    conn: Connection, f: RunFilter, *, after: tuple[datetime, str] | None = None, limit: int = 50
) -> list[RunSummary]:
    """Up to ``limit`` runs matching ``f``, newest first, after the ``(created_at, run_id)`` key."""
    query = sa.select(*SUMMARY_COLUMNS)
    query = _where(query, f)
    if after is not None:
        query = query.where(sa.tuple_(run_t.c.created_at, run_t.c.run_id) < sa.tuple_(*after))
    query = query.order_by(run_t.c.created_at.desc(), run_t.c.run_id.desc()).limit(limit)
    return [summary(r) for r in conn.execute(query)]


def count_runs(conn: Connection, f: RunFilter) -> int:
    return int(conn.execute(_where(sa.select(sa.func.count()).select_from(run_t), f)).scalar_one())


def run_ids(conn: Connection, f: RunFilter, limit: int) -> list[str]:
    """The ids of at most ``limit`` runs matching ``f``, oldest first."""
    query = _where(sa.select(run_t.c.run_id), f)
    query = query.order_by(run_t.c.created_at, run_t.c.run_id).limit(limit)
    return [str(r) for r in conn.execute(query).scalars()]
