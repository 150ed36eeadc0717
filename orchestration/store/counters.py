"""Run counters: runs started and finished per flow, as the ``run_counter`` trigger counted them
(see :class:`orchestration.store.models.RunCounter`). Read by the metrics; folded by retention."""

from __future__ import annotations

from collections import Counter

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestration.store.tables import counter_t

#: ``run_counter.kind`` of a run that started (``status`` is then ``running``).
STARTED = "started"
#: ``run_counter.kind`` of a run that ended (``status`` is its terminal status).
FINISHED = "finished"


def totals(conn: Connection) -> dict[tuple[str, str, str], int]:
    """``(flow, kind, status) -> count`` since the store was built."""
    t = counter_t
    query = sa.select(t.c.flow_name, t.c.kind, t.c.status, sa.func.sum(t.c.n)).group_by(
        t.c.flow_name, t.c.kind, t.c.status
    )
    return {(str(f), str(k), str(s)): int(n) for f, k, s, n in conn.execute(query)}


def fold(conn: Connection, limit: int = 10_000) -> int:
    """Replace up to ``limit`` counter rows, oldest first, by one row per ``(flow, kind, status)``
    holding their sum; the totals stay the same. Returns how many rows it took (0: nothing to fold).

    Run it in its own transaction. Only the rows it deleted are summed (``DELETE ... RETURNING``),
    so two folds at once never count a row twice; rows the trigger adds meanwhile wait for the next.
    """
    t = counter_t
    rows, groups = conn.execute(
        sa.select(
            sa.func.count(), sa.func.count(sa.distinct(t.c.flow_name + "|" + t.c.kind + "|" + t.c.status))
        )
    ).one()
    if rows <= groups:
        return 0
    picked = sa.select(t.c.id).order_by(t.c.id).limit(limit).with_for_update(skip_locked=True)
    taken = conn.execute(
        t.delete()
        .where(t.c.id.in_(picked.scalar_subquery()))
        .returning(t.c.flow_name, t.c.kind, t.c.status, t.c.n)
    ).all()
    sums: Counter[tuple[str, str, str]] = Counter()
    for flow, kind, status, n in taken:
        sums[(flow, kind, status)] += int(n)
    if sums:
        conn.execute(
            t.insert(),
            [{"flow_name": f, "kind": k, "status": s, "n": n} for (f, k, s), n in sorted(sums.items())],
        )
    return len(taken)
