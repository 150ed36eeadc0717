"""Retention: finished runs (with their step records and event keys), rejected events and dead
letters older than a cut-off, deleted a batch at a time.

Each batch selects at most ``limit`` rows, oldest first, with ``FOR UPDATE SKIP LOCKED`` (on
Postgres; SQLite has one writer and no row locks) and deletes them by key: the caller runs each
batch in its own short transaction, so a purge holds a few row locks for milliseconds, never a
table lock, and rows another transaction holds are left for the next batch. Live runs (``queued``,
``running``) are never candidates. The ``count_*`` functions say what a purge would delete.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestration.names import TERMINAL_RUN_STATUSES
from orchestration.store.tables import dead_letter_t, key_t, rejected_t, run_t, step_t


@dataclass(frozen=True)
class Purged:
    """What one batch deleted (or a count found): rows of the purged kind, and the step records
    that went with them (runs only)."""

    rows: int
    step_records: int = 0


def terminal(statuses: Collection[str] | None) -> list[str]:
    """The run statuses a purge may take: the terminal ones asked for (all of them by default);
    asking for a live status is an error, never a purge of live runs."""
    if not statuses:
        return sorted(TERMINAL_RUN_STATUSES)
    live = sorted(set(statuses) - TERMINAL_RUN_STATUSES)
    if live:
        raise ValueError(
            f"only finished runs are purged ({', '.join(sorted(TERMINAL_RUN_STATUSES))}), not {live}"
        )
    return sorted(set(statuses))


def _runs_where(before: datetime, statuses: Collection[str] | None) -> list[sa.ColumnElement[bool]]:
    return [run_t.c.finished_at < before, run_t.c.status.in_(terminal(statuses))]


def purge_runs(
    conn: Connection, before: datetime, statuses: Collection[str] | None = None, limit: int = 1000
) -> Purged:
    """Delete up to ``limit`` finished runs that ended before ``before`` (of ``statuses``, default
    every terminal one), their step records and their event keys. One batch: call it in its own
    transaction, again until it deletes fewer than ``limit``.

    An event whose key goes with its run is new again: the same event id sent after the purge
    opens a new run.
    """
    picked = (
        sa.select(run_t.c.run_id, run_t.c.event_id)
        .where(*_runs_where(before, statuses))
        .order_by(run_t.c.finished_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = conn.execute(picked).all()
    if not rows:
        return Purged(0)
    run_ids = [r.run_id for r in rows]
    event_ids = [r.event_id for r in rows if r.event_id is not None]
    steps = conn.execute(step_t.delete().where(step_t.c.run_id.in_(run_ids))).rowcount
    if event_ids:
        conn.execute(key_t.delete().where(key_t.c.event_id.in_(event_ids), key_t.c.run_id.in_(run_ids)))
    runs = conn.execute(run_t.delete().where(run_t.c.run_id.in_(run_ids))).rowcount
    return Purged(int(runs), int(steps))


def count_runs(conn: Connection, before: datetime, statuses: Collection[str] | None = None) -> Purged:
    """What :func:`purge_runs` would delete, every batch of it: runs and their step records."""
    where = _runs_where(before, statuses)
    runs = conn.execute(sa.select(sa.func.count()).select_from(run_t).where(*where)).scalar_one()
    steps = conn.execute(
        sa.select(sa.func.count())
        .select_from(step_t.join(run_t, run_t.c.run_id == step_t.c.run_id))
        .where(*where)
    ).scalar_one()
    return Purged(int(runs), int(steps))


def _where(
    table: sa.Table, age: sa.Column[Any], before: datetime | None, statuses: Sequence[str] | None
) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = []
    if before is not None:
        where.append(age < before)
    if statuses:
        where.append(table.c.status.in_(list(statuses)))
    return where


def _purge_by_id(
    conn: Connection, table: sa.Table, age: sa.Column[Any], where: list[sa.ColumnElement[bool]], limit: int
) -> Purged:
    picked = (
        sa.select(table.c.id)
        .where(*where)
        .order_by(age, table.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list(conn.execute(picked).scalars())
    if not ids:
        return Purged(0)
    return Purged(int(conn.execute(table.delete().where(table.c.id.in_(ids))).rowcount))


def _count(conn: Connection, table: sa.Table, where: list[sa.ColumnElement[bool]]) -> Purged:
    return Purged(int(conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()))


def purge_rejected(
    conn: Connection, before: datetime, statuses: Sequence[str] | None = None, limit: int = 1000
) -> Purged:
    """Delete up to ``limit`` rejected events received before ``before`` (only those of
    ``statuses``, ``rejected`` or ``replayed``, when given). One batch, as :func:`purge_runs`."""
    t = rejected_t
    return _purge_by_id(conn, t, t.c.created_at, _where(t, t.c.created_at, before, statuses), limit)


def count_rejected(conn: Connection, before: datetime, statuses: Sequence[str] | None = None) -> Purged:
    t = rejected_t
    return _count(conn, t, _where(t, t.c.created_at, before, statuses))


def purge_dead_letters(
    conn: Connection, before: datetime | None, statuses: Sequence[str] | None = None, limit: int = 1000
) -> Purged:
    """Delete up to ``limit`` dead letters last seen before ``before`` (every one when None; only
    those of ``statuses``, ``dead`` or ``replayed``, when given). One batch, as :func:`purge_runs`."""
    t = dead_letter_t
    return _purge_by_id(conn, t, t.c.last_seen, _where(t, t.c.last_seen, before, statuses), limit)


def count_dead_letters(
    conn: Connection, before: datetime | None, statuses: Sequence[str] | None = None
) -> Purged:
    t = dead_letter_t
    return _count(conn, t, _where(t, t.c.last_seen, before, statuses))
