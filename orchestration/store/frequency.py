"""Frequency caps: the marketing messages counted per recipient, on their local calendar day.

Exact under concurrency: a check first upserts the recipient's ``recipient_guard`` row, which holds
that row's lock (Postgres; SQLite's write lock) until the transaction ends, so two sends to one
recipient count one after the other, and the second sees the first's slot. Sends to different
recipients do not wait for each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestration.store.base import utcnow
from orchestration.store.queries import queries
from orchestration.store.tables import frequency_slot_t, recipient_guard_t


@dataclass(frozen=True)
class Caps:
    """The most messages per recipient; None: no cap."""

    day: int | None = None
    week: int | None = None
    campaign_day: int | None = None
    campaign_week: int | None = None

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.day, self.week, self.campaign_day, self.campaign_week))


def week_of(day: date) -> tuple[date, date]:
    """The calendar week (Monday to Sunday) ``day`` is in."""
    monday = day - timedelta(days=day.weekday())
    return monday, monday + timedelta(days=6)


def lock(conn: Connection, recipient: str) -> None:
    """Take ``recipient``'s guard row lock until the transaction ends (an upsert: the row is made
    the first time)."""
    now = utcnow()
    conn.execute(
        queries(conn)
        .insert(recipient_guard_t)
        .values(recipient=recipient, checked_at=now)
        .on_conflict_do_update(index_elements=["recipient"], set_={"checked_at": now})
    )


def usage(*, key: str, recipient: str, campaign: str | None, day: date) -> sa.Subquery:
    """One row: whether ``key`` is counted already (``mine``), and the messages counted for
    ``recipient`` on ``day`` and in its week, overall and from ``campaign``."""
    slots = frequency_slot_t.c
    monday, sunday = week_of(day)
    same_campaign = slots.campaign == campaign if campaign is not None else sa.false()

    def count(*conditions: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
        return sa.func.coalesce(sa.func.sum(sa.case((sa.and_(*conditions), 1), else_=0)), 0)

    counted = frequency_slot_t.alias("counted")
    mine = sa.exists().where(counted.c.key == key)
    return (
        sa.select(
            mine.label("mine"),
            count(slots.local_day == day).label("day"),
            count(sa.true()).label("week"),
            count(slots.local_day == day, same_campaign).label("campaign_day"),
            count(same_campaign).label("campaign_week"),
        )
        .where(slots.recipient == recipient, slots.local_day.between(monday, sunday))
        .subquery("usage")
    )


def verdict(used: sa.Row[Any], caps: Caps, day: date, campaign: str | None) -> str | None:
    """The cap a message would go over, described, given ``used`` (a row of :func:`usage`); None
    when it is counted already or no cap is reached."""
    if used.mine:
        return None
    checks = [("day", caps.day, used.day), ("week", caps.week, used.week)]
    if campaign is not None:
        checks += [
            ("campaign_day", caps.campaign_day, used.campaign_day),
            ("campaign_week", caps.campaign_week, used.campaign_week),
        ]
    for name, cap, count in checks:
        if cap is not None and count >= cap:
            return _describe(name, cap, day, campaign)
    return None


def add(conn: Connection, *, key: str, recipient: str, campaign: str | None, day: date) -> None:
    """Count the message ``key`` (once: a key counted already stays as it is)."""
    values = {
        "key": key,
        "recipient": recipient,
        "campaign": campaign,
        "local_day": day,
        "created_at": utcnow(),
    }
    conn.execute(
        queries(conn).insert(frequency_slot_t).values(values).on_conflict_do_nothing(index_elements=["key"])
    )


def reserve(
    conn: Connection, *, key: str, recipient: str, campaign: str | None, day: date, caps: Caps
) -> str | None:
    """Count the message ``key`` for ``recipient`` on ``day`` (their local day), unless a cap is
    reached: then nothing is written and the cap is described. A key counted before (a retried
    or redelivered send) is allowed again without a second count. Call it in a transaction."""
    lock(conn, recipient)
    used = conn.execute(sa.select(usage(key=key, recipient=recipient, campaign=campaign, day=day))).one()
    why = verdict(used, caps, day, campaign)
    if why is None:
        add(conn, key=key, recipient=recipient, campaign=campaign, day=day)
    return why


def release(conn: Connection, key: str) -> bool:
    """Give back the slot of a message that was not sent after all (it failed for good)."""
    return bool(conn.execute(frequency_slot_t.delete().where(frequency_slot_t.c.key == key)).rowcount)


def used(conn: Connection, recipient: str) -> int:
    """How many messages are counted for ``recipient`` (tests, operators)."""
    query = sa.select(sa.func.count()).where(frequency_slot_t.c.recipient == recipient)
    return int(conn.execute(query).scalar_one())


def _describe(name: str, cap: int, day: date, campaign: str | None) -> str:
    per = "day" if name.endswith("day") else "week"
    when = (
        day.isoformat() if per == "day" else "the week of {} to {}".format(*map(date.isoformat, week_of(day)))
    )
    scope = f" from campaign {campaign!r}" if name.startswith("campaign") else ""
    setting = f"CAMPAIGNFLOW_FREQUENCY_CAP_{name.upper()}"
    return (
        f"frequency cap reached: {cap} message(s) per {per}{scope} ({when}, recipient's time zone; {setting})"
    )
