"""Dead letters: messages the workers could not process, kept as received.

One row per distinct message (its ``fingerprint``); the same message seen again bumps ``count`` and
``last_seen`` and makes the row ``dead`` again if it had been replayed.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestration.store.base import AnyRow, utcnow
from orchestration.store.queries import queries
from orchestration.store.tables import dead_letter_t

#: ``status`` of a dead letter kept for a look, a replay or a purge.
DEAD = "dead"
#: ``status`` of a dead letter published again.
REPLAYED = "replayed"


def record(conn: Connection, values: dict[str, Any]) -> int:
    """Keep a dead letter (``fingerprint``, ``queue``, ``task``, ``reason``, ``detail``, ``headers``,
    ``content_type``, ``content_encoding``, ``body``, ``body_size``), or count it again; its id."""
    now = utcnow()
    t = dead_letter_t
    stmt = (
        queries(conn)
        .insert(t)
        .values(**values, first_seen=now, last_seen=now)
        .on_conflict_do_update(
            index_elements=[t.c.fingerprint],
            set_={
                "count": t.c.count + 1,
                "last_seen": now,
                "status": DEAD,
                "reason": values["reason"],
                "detail": values["detail"],
            },
        )
        .returning(t.c.id)
    )
    return int(conn.execute(stmt).scalar_one())


def list_dead_letters(conn: Connection, status: str | None, queue: str | None, limit: int) -> list[AnyRow]:
    """Most recently seen first; only those of ``status`` and ``queue`` when given (no bodies)."""
    t = dead_letter_t
    columns = [c for c in t.c if c.name not in ("body", "headers")]
    query = sa.select(*columns).order_by(t.c.last_seen.desc(), t.c.id.desc()).limit(limit)
    if status:
        query = query.where(t.c.status == status)
    if queue:
        query = query.where(t.c.queue == queue)
    return list(conn.execute(query))


def get_dead_letter(conn: Connection, dead_letter_id: int) -> AnyRow | None:
    return conn.execute(sa.select(dead_letter_t).where(dead_letter_t.c.id == dead_letter_id)).first()


def mark_replayed(conn: Connection, dead_letter_id: int) -> None:
    conn.execute(
        dead_letter_t.update()
        .where(dead_letter_t.c.id == dead_letter_id)
        .values(status=REPLAYED, replayed_at=utcnow())
    )


def dead_counts(conn: Connection) -> dict[str, int]:
    """Dead letters still ``dead`` (not replayed), per reason."""
    t = dead_letter_t
    query = sa.select(t.c.reason, sa.func.count()).where(t.c.status == DEAD).group_by(t.c.reason)
    return {str(reason): int(n) for reason, n in conn.execute(query)}
