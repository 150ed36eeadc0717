"""Cluster-wide permits held in Redis: :class:`Permits` acquires, releases and renews them, lists
what each limit holds, and lets other code slow or pause one key (:meth:`Permits.slow_key`,
:meth:`Permits.pause_key`).

One limit is one agent and one key value (``""`` when the agent's limits are not keyed). Its keys
live under ``campaignflow:limits:`` (after the deployment's key prefix), are created by the first
step that asks and expire once nobody used them for ``IDLE_SECONDS``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

from orchestration.engine.permits import scripts
from orchestration.flows.limits import key_slug, rate_interval
from orchestration.names import LIMITS_INDEX_KEY, LIMITS_KEY_PREFIX

#: A limit nobody used this long is forgotten (its keys expire): seconds.
IDLE_SECONDS = 3600.0
#: A refused step stops blocking lower priorities this long after it was due back: seconds.
WAIT_GRACE = 2.0
#: The shortest wait a refused step is given: seconds.
MIN_WAIT = 0.02
_US = 1_000_000


@dataclass(frozen=True)
class Limit:
    """What holds one step back: the agent's limits for one key value."""

    agent: str
    key: str
    concurrency: int | None
    rate: str | None

    @property
    def member(self) -> str:
        """How the limit is listed (``agent|key``)."""
        return f"{self.agent}|{self.key}"

    @property
    def interval(self) -> float:
        return rate_interval(self.rate) if self.rate else 0.0


@dataclass(frozen=True)
class Decision:
    """What :meth:`Permits.acquire` answered: a permit, or how long to wait for one (seconds)."""

    granted: bool
    wait: float
    held: int
    ahead: int
    #: When Redis answered (its clock, seconds since the epoch).
    at: float = 0.0


@dataclass(frozen=True)
class LimitUse:
    """One limit as ``campaignflow limits`` shows it."""

    agent: str
    key: str
    leases: int
    waiting: int
    tokens: float | None
    hold_seconds: float | None
    rate_override: float | None
    paused_until: float | None
    last_used: float
    #: The steps waiting (``run_id:step_id``), highest priority first (the first 20).
    waiters: list[str]


class Permits:
    """The permits of every limit, on one Redis."""

    def __init__(self, client: redis.Redis, prefix: str = "", lease_seconds: float = 30.0) -> None:
        self.client = client
        self.base = prefix + LIMITS_KEY_PREFIX
        self.index = prefix + LIMITS_INDEX_KEY
        self.lease_seconds = lease_seconds
        self._acquire = client.register_script(scripts.ACQUIRE)
        self._release = client.register_script(scripts.RELEASE)
        self._renew = client.register_script(scripts.RENEW)

    def keys(self, agent: str, key: str) -> dict[str, str]:
        base = f"{self.base}{agent}:{key_slug(key)}:"
        return {part: base + part for part in ("leases", "waiting", "wait_exp", "tat", "ctl", "log")}

    def acquire(self, limit: Limit, holder: str, priority: int = 0) -> Decision:
        """One round trip: a permit for ``holder`` (``run_id:step_id``; a holder that has one
        keeps it, renewed), or how long until one should be free. A waiting step of a higher
        ``priority`` is served first."""
        k = self.keys(limit.agent, limit.key)
        granted, wait, now, held, ahead = self._acquire(
            keys=[k["leases"], k["waiting"], k["wait_exp"], k["tat"], k["ctl"], self.index, k["log"]],
            args=[
                holder,
                priority,
                limit.concurrency or 0,
                int(self.lease_seconds * _US),
                *rate_parts(limit.rate),
                int((WAIT_GRACE + self.lease_seconds) * _US),
                int(max(IDLE_SECONDS, 2 * self.lease_seconds) * _US),
                limit.member,
                int(MIN_WAIT * _US),
            ],
        )
        return Decision(bool(granted), int(wait) / _US, int(held), int(ahead), int(now) / _US)

    def release(self, limit: Limit, holder: str) -> bool:
        """Give the permit back (a second round trip, after the step)."""
        k = self.keys(limit.agent, limit.key)
        return bool(self._release(keys=[k["leases"], k["ctl"]], args=[holder, int(self.lease_seconds * _US)]))

    def renew(self, leases_key: str, holders: list[str]) -> int:
        """Push the leases of ``holders`` (under ``leases_key``) a lease time from now."""
        if not holders:
            return 0
        return int(self._renew(keys=[leases_key], args=[int(self.lease_seconds * _US), *holders]))

    # ------------------------------------------------------------- what other code may set
    def slow_key(self, agent: str, key: str, rate: str | None, *, for_seconds: float) -> None:
        """Hold ``agent``'s steps for ``key`` to ``rate`` (``"5/m"``) for ``for_seconds``, whatever
        their declared rate (a receiving domain that defers); ``rate=None`` lifts it. The agent must
        declare a limit (a rate or a concurrency) for its steps to ask for permits at all."""
        keys = self.keys(agent, key)
        ctl = keys["ctl"]
        self.client.delete(keys["tat"])  # the schedule of the old rate; the log still caps the period
        if rate is None:
            self.client.hdel(ctl, "rate_count", "rate_period_us")
            return
        pipe = self.client.pipeline()
        count, period = rate_parts(rate)
        pipe.hset(ctl, mapping={"rate_count": str(count), "rate_period_us": str(period)})
        pipe.expire(ctl, max(int(for_seconds), 1))
        pipe.execute()

    def pause_key(self, agent: str, key: str, until: datetime | None) -> None:
        """No step of ``agent`` for ``key`` starts before ``until`` (None: resume now)."""
        ctl = self.keys(agent, key)["ctl"]
        if until is None:
            self.client.hdel(ctl, "paused_until")
            return
        stamp = int(until.timestamp() * _US)
        pipe = self.client.pipeline()
        pipe.hset(ctl, "paused_until", str(stamp))
        pipe.expireat(ctl, int(until.timestamp() + IDLE_SECONDS))
        pipe.execute()

    # ----------------------------------------------------------------------------- reading
    def usage(self, limits: dict[str, Limit] | None = None) -> list[LimitUse]:
        """Every limit used within ``IDLE_SECONDS``: its leases, waiting steps, rate tokens left."""
        clock: Any = self.client.time()
        now = int(clock[0]) * _US + int(clock[1])
        self.client.zremrangebyscore(self.index, "-inf", now - int(IDLE_SECONDS * _US))
        members: Any = self.client.zrange(self.index, 0, -1, withscores=True)
        pipe = self.client.pipeline()
        found: list[tuple[str, str, float]] = []
        for raw, score in members:
            agent, _, key = _text(raw).partition("|")
            k = self.keys(agent, key)
            pipe.zcount(k["leases"], now, "+inf")
            pipe.zcount(k["wait_exp"], now, "+inf")
            pipe.zrevrange(k["waiting"], 0, 19)
            pipe.get(k["tat"])
            pipe.hmget(k["ctl"], "hold_us", "rate_count", "rate_period_us", "paused_until")
            found.append((agent, key, float(score)))
        replies = pipe.execute()
        out = []
        for i, (agent, key, score) in enumerate(found):
            leases, waiting, waiters, tat, (hold, o_count, o_period, paused) = replies[5 * i : 5 * i + 5]
            declared = (limits or {}).get(agent)
            override = int(o_period) / int(o_count) if o_count and o_period else None
            interval = override or (declared.interval * _US if declared else 0)
            tokens = None
            if interval:
                tokens = max(0.0, min(2.0, 2.0 - max(0, int(tat or 0) - now) / interval))
            out.append(
                LimitUse(
                    agent=agent,
                    key=key,
                    leases=int(leases),
                    waiting=int(waiting),
                    tokens=tokens,
                    hold_seconds=int(hold) / _US if hold else None,
                    rate_override=_US / override if override else None,
                    paused_until=int(paused) / _US if paused and int(paused) > now else None,
                    last_used=score / _US,
                    waiters=[_text(w) for w in waiters],
                )
            )
        return out


def rate_parts(rate: str | None) -> tuple[int, int]:
    """``"20/s"`` as (20, one second in microseconds); (0, 0) for no rate. A fractional count
    (``"0.5/s"``) is held as the same rate over a longer period (1 per 2 s)."""
    if not rate:
        return 0, 0
    interval = rate_interval(rate)
    count = float(rate.partition("/")[0])
    if count >= 1 and count.is_integer():
        return int(count), int(interval * count * _US)
    return 1, int(interval * _US)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def jittered(wait: float, ceiling: float, rng: random.Random | None = None) -> float:
    """The countdown of a refused step: ``wait`` plus a little (up to 2 % of it, at most 10 ms,
    and up to 2 ms more), at least :data:`MIN_WAIT`, at most ``ceiling``. Each refused step is
    already told its own place in the line (``wait`` differs by an interval or a share of a hold
    from the next one's), so the jitter only parts equal waits; more would come back late and
    leave permits idle."""
    r = rng or random
    late = r.uniform(0.0, min(0.02 * wait, 0.01)) + r.uniform(0.0, 0.002)
    return min(max(MIN_WAIT, wait + late), ceiling)
