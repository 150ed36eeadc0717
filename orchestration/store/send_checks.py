"""What a send must know before it goes, read in one statement: the recipient's suppression entry,
the receiving domain's backoff and, for a message that counts against the caps, the recipient's
usage (:func:`orchestration.store.frequency.usage`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestration.store import domains, suppression
from orchestration.store.base import aware
from orchestration.store.tables import domain_backoff_t, suppression_t


@dataclass(frozen=True)
class Checks:
    suppressed: suppression.Entry | None
    domain: domains.State
    #: The row of ``usage`` (``mine``, ``day``, ``week``, ...); None when none was asked for.
    used: sa.Row[Any] | None


def read(conn: Connection, address: str, domain: str, usage: sa.Subquery | None = None) -> Checks:
    one = sa.select(sa.literal(1).label("one")).subquery("one")
    supp, back = suppression_t.c, domain_backoff_t.c
    joined = one.outerjoin(suppression_t, supp.address == address).outerjoin(
        domain_backoff_t, back.domain == domain
    )
    columns: list[Any] = [supp.address, supp.reason, supp.source, supp.detail, supp.created_at]
    columns += [back.strikes, back.paused_until, back.last_reply]
    if usage is not None:
        joined = joined.join(usage, sa.true())
        columns += list(usage.c)
    row = conn.execute(sa.select(*columns).select_from(joined)).one()
    entry = None
    if row.address is not None:
        entry = suppression.Entry(row.address, row.reason, row.source, row.detail, aware(row.created_at))
    state = domains.State(domain, row.strikes or 0, aware(row.paused_until), row.last_reply)
    return Checks(entry, state, row if usage is not None else None)
