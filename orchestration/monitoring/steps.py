"""Step metrics that workers write and any process reads: per-agent try counts, retries and a
duration histogram, kept as Redis hashes on the broker (under the deployment's key prefix).

Every worker process (prefork children included) adds to the same hashes, so the scrape endpoint
(``campaignflow metrics serve``) sees the whole fleet without each worker serving HTTP. The counts
survive worker restarts, as Prometheus counters should; they reset only when the keys are deleted.
"""

from __future__ import annotations

import bisect
import logging
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import redis

from orchestration.settings import get_settings

log = logging.getLogger(__name__)

#: Upper bounds (seconds) of the step duration buckets; agents' time limits go up to minutes.
BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, math.inf)
KEY = "campaignflow:metrics:"


@dataclass
class AgentSteps:
    """What the hashes hold for one agent."""

    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    seconds: float = 0.0
    tries: dict[str, int] = field(default_factory=dict)
    retries: int = 0

    def cumulative(self) -> list[tuple[str, float]]:
        total, out = 0, []
        for bound, count in zip(BUCKETS, self.buckets, strict=True):
            total += count
            out.append(("+Inf" if bound == math.inf else repr(bound), float(total)))
        return out


def _bucket(seconds: float) -> int:
    return bisect.bisect_left(BUCKETS, seconds)


@lru_cache(maxsize=1)
def client() -> redis.Redis | None:
    """The broker's Redis, or ``None`` when the broker is not Redis (step metrics are then off)."""
    url = get_settings().broker_url
    if not url or not url.startswith(("redis://", "rediss://")):
        return None
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def prefix() -> str:
    return (get_settings().redis_key_prefix or "") + KEY


#: One step try in one command (a pipeline costs more to build in redis-py than the round trip).
_RECORD_TRY = """
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('HINCRBYFLOAT', KEYS[2], ARGV[2], ARGV[3])
redis.call('HINCRBY', KEYS[3], ARGV[4], 1)
"""


@lru_cache(maxsize=1)
def _record_try_script() -> Any:
    conn = client()
    return None if conn is None else conn.register_script(_RECORD_TRY)


def record_try(agent: str, state: str, seconds: float) -> None:
    """One finished try of one step: its Celery state (SUCCESS, RETRY, FAILURE, ...) and duration."""
    script = _record_try_script()
    if script is None:
        return
    p = prefix()
    try:
        script(
            keys=[f"{p}step_buckets:{agent}", f"{p}step_seconds", f"{p}step_tries"],
            args=[str(_bucket(seconds)), agent, repr(seconds), f"{agent}|{state.lower()}"],
        )
    except redis.RedisError as exc:  # metrics never fail a step
        log.warning("step metrics not written for %s: %s", agent, exc)


def record_retry(agent: str) -> None:
    conn = client()
    if conn is None:
        return
    try:
        conn.hincrby(f"{prefix()}step_retries", agent, 1)
    except redis.RedisError as exc:
        log.warning("retry metric not written for %s: %s", agent, exc)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def read(conn: redis.Redis) -> dict[str, AgentSteps]:
    """Every agent's step metrics, as the workers wrote them."""
    p = prefix()
    agents: dict[str, AgentSteps] = {}

    def of(name: bytes | str) -> AgentSteps:
        return agents.setdefault(_text(name), AgentSteps())

    for agent, seconds in conn.hgetall(f"{p}step_seconds").items():
        of(agent).seconds = float(seconds)
    for key, count in conn.hgetall(f"{p}step_tries").items():
        agent, _, state = _text(key).rpartition("|")
        of(agent).tries[state] = int(count)
    for agent, count in conn.hgetall(f"{p}step_retries").items():
        of(agent).retries = int(count)
    for name, steps in agents.items():
        for index, count in conn.hgetall(f"{p}step_buckets:{name}").items():
            i = int(index)
            if 0 <= i < len(BUCKETS):
                steps.buckets[i] = int(count)
    return agents
