"""Adaptive backoff per receiving domain: a deferral (SMTP 4xx) pauses the domain, each further one
doubles the pause up to a ceiling, and each delivery to it takes one deferral back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestration.store.base import aware, utcnow
from orchestration.store.queries import queries
from orchestration.store.tables import domain_backoff_t

_d = domain_backoff_t.c


@dataclass(frozen=True)
class State:
    domain: str
    strikes: int
    paused_until: datetime | None
    last_reply: str | None

    def wait(self, now: datetime) -> float:
        """Seconds until the domain may be sent to again (0: now)."""
        if self.paused_until is None:
            return 0.0
        return max(0.0, (self.paused_until - now).total_seconds())


def state(conn: Connection, domain: str) -> State:
    row = conn.execute(sa.select(domain_backoff_t).where(_d.domain == domain)).first()
    if row is None:
        return State(domain, 0, None, None)
    return State(row.domain, row.strikes, aware(row.paused_until), row.last_reply)


def defer(conn: Connection, domain: str, reply: str, *, base: float, ceiling: float) -> State:
    """Count a deferral and pause the domain ``base * 2**(strikes - 1)`` seconds (at most
    ``ceiling``) from now. One transaction: the upsert holds the row's lock."""
    now = utcnow()
    upsert = (
        queries(conn)
        .insert(domain_backoff_t)
        .values(domain=domain, strikes=1, last_reply=reply, updated_at=now)
        .on_conflict_do_update(
            index_elements=["domain"],
            set_={"strikes": _d.strikes + 1, "last_reply": reply, "updated_at": now},
        )
        .returning(_d.strikes)
    )
    strikes = int(conn.execute(upsert).scalar_one())
    pause = min(ceiling, base * 2 ** min(strikes - 1, 30))
    until = now + timedelta(seconds=pause)
    conn.execute(domain_backoff_t.update().where(_d.domain == domain).values(paused_until=until))
    return State(domain, strikes, until, reply)


def recover(conn: Connection, domain: str) -> None:
    """A message went through: one deferral fewer (the next pause is half as long); the row goes
    when none is left."""
    conn.execute(
        domain_backoff_t.update().where(_d.domain == domain, _d.strikes > 0).values(strikes=_d.strikes - 1)
    )
    conn.execute(domain_backoff_t.delete().where(_d.domain == domain, _d.strikes <= 0))


def all_states(conn: Connection) -> list[State]:
    rows = conn.execute(sa.select(domain_backoff_t).order_by(_d.domain))
    return [State(r.domain, r.strikes, aware(r.paused_until), r.last_reply) for r in rows]
