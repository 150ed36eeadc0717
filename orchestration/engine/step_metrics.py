"""Step metrics that workers write and any process reads: per-agent try counts, retries and a
duration histogram, kept as Redis hashes on the broker (under the deployment's key prefix).

Every worker process (prefork children included) adds to the same hashes, so the scrape endpoint
(``campaignflow metrics serve``) sees the whole fleet without each worker serving HTTP. The counts
survive worker restarts, as Prometheus counters should; they reset only when the keys are deleted.
A process adds its counts up in memory and sends them once a second (and when its worker shuts
down), so a step pays no Redis round trip for its metrics.
"""

from __future__ import annotations

import atexit
import bisect
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import redis

from orchestration.names import (
    METRICS_KEY_PREFIX,
    STEP_BUCKETS_KEY_PREFIX,
    STEP_RETRIES_KEY,
    STEP_SECONDS_KEY,
    STEP_THROTTLED_SECONDS_KEY,
    STEP_THROTTLES_KEY,
    STEP_TRIES_KEY,
)
from orchestration.settings import get_settings

log = logging.getLogger(__name__)

#: Upper bounds (seconds) of the step duration buckets; agents' time limits go up to minutes.
BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, math.inf)


@dataclass
class AgentSteps:
    """What the hashes hold for one agent."""

    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    seconds: float = 0.0
    tries: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    #: Times a step was refused a permit of its cluster-wide limits and put back.
    throttles: int = 0
    #: Seconds steps waited for permits (added when the step gets one).
    throttled_seconds: float = 0.0

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
    return (get_settings().redis_key_prefix or "") + METRICS_KEY_PREFIX


#: How often a process sends its step metrics to Redis. Counting in memory and sending the sums
#: once a second costs a step no round trip; a process that dies loses at most that second.
FLUSH_SECONDS = 1.0


@dataclass
class _Pending:
    """Counts a process has not sent yet: ``(hash key, field) -> amount``."""

    ints: dict[tuple[str, str], int] = field(default_factory=dict)
    floats: dict[tuple[str, str], float] = field(default_factory=dict)

    def add(self, key: str, name: str, amount: int = 1) -> None:
        self.ints[(key, name)] = self.ints.get((key, name), 0) + amount

    def add_float(self, key: str, name: str, amount: float) -> None:
        self.floats[(key, name)] = self.floats.get((key, name), 0.0) + amount

    def merge(self, other: _Pending) -> None:
        for (key, name), amount in other.ints.items():
            self.add(key, name, amount)
        for (key, name), value in other.floats.items():
            self.add_float(key, name, value)

    def __bool__(self) -> bool:
        return bool(self.ints or self.floats)


class _Batcher:
    """Per process: adds up step metrics and sends them from a daemon thread every
    :data:`FLUSH_SECONDS`, and at worker shutdown (:func:`flush`). Fork-safe: a child starts empty
    with its own lock and thread."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.pending = _Pending()
        self.thread: threading.Thread | None = None

    def take(self) -> _Pending:
        with self.lock:
            pending, self.pending = self.pending, _Pending()
        return pending

    def give_back(self, pending: _Pending) -> None:
        with self.lock:
            self.pending.merge(pending)

    def add(self, update: Callable[[_Pending], None]) -> None:
        if self.pid != os.getpid():
            self._reset()
        with self.lock:
            update(self.pending)
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, name="campaignflow-metrics", daemon=True)
                self.thread.start()

    def _loop(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            if self.pid != os.getpid():
                return
            flush()


_batcher = _Batcher()


def flush() -> None:
    """Send what this process counted since the last flush, in one MULTI/EXEC (a scrape sees a
    try's count, duration and bucket together). When Redis is away the counts wait for the next
    flush."""
    pending = _batcher.take()
    if not pending:  # nothing counted: not even the settings are read (a process that failed on
        return  # them flushes at exit too)
    conn = client()
    if conn is None:
        return
    pipe = conn.pipeline(transaction=True)
    for (key, name), amount in pending.ints.items():
        pipe.hincrby(key, name, amount)
    for (key, name), value in pending.floats.items():
        pipe.hincrbyfloat(key, name, value)
    try:
        pipe.execute()
    except redis.RedisError as exc:  # metrics never fail a step
        # kept for the next flush; a connection lost after Redis applied them counts them twice
        log.warning("step metrics not written yet: %s", exc)
        _batcher.give_back(pending)


atexit.register(flush)


def record_try(agent: str, state: str, seconds: float) -> None:
    """One finished try of one step: its Celery state (SUCCESS, RETRY, FAILURE, ...) and duration."""
    if client() is None:
        return
    p = prefix()

    def update(pending: _Pending) -> None:
        pending.add(f"{p}{STEP_BUCKETS_KEY_PREFIX}{agent}", str(_bucket(seconds)))
        pending.add_float(p + STEP_SECONDS_KEY, agent, seconds)
        pending.add(p + STEP_TRIES_KEY, f"{agent}|{state.lower()}")

    _batcher.add(update)


def record_retry(agent: str) -> None:
    if client() is None:
        return
    key = prefix() + STEP_RETRIES_KEY
    _batcher.add(lambda pending: pending.add(key, agent))


def record_throttle(agent: str) -> None:
    """A step of ``agent`` was refused a permit and put back (no try)."""
    if client() is None:
        return
    key = prefix() + STEP_THROTTLES_KEY
    _batcher.add(lambda pending: pending.add(key, agent))


def record_throttled(agent: str, seconds: float) -> None:
    """A step of ``agent`` got its permit after waiting ``seconds`` for it."""
    if client() is None:
        return
    key = prefix() + STEP_THROTTLED_SECONDS_KEY
    _batcher.add(lambda pending: pending.add_float(key, agent, seconds))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def read(conn: redis.Redis) -> dict[str, AgentSteps]:
    """Every agent's step metrics, as the workers wrote them."""
    p = prefix()
    agents: dict[str, AgentSteps] = {}

    def of(name: bytes | str) -> AgentSteps:
        return agents.setdefault(_text(name), AgentSteps())

    for agent, seconds in conn.hgetall(p + STEP_SECONDS_KEY).items():
        of(agent).seconds = float(seconds)
    for key, count in conn.hgetall(p + STEP_TRIES_KEY).items():
        agent, _, state = _text(key).rpartition("|")
        of(agent).tries[state] = int(count)
    for agent, count in conn.hgetall(p + STEP_RETRIES_KEY).items():
        of(agent).retries = int(count)
    for agent, count in conn.hgetall(p + STEP_THROTTLES_KEY).items():
        of(agent).throttles = int(count)
    for agent, seconds in conn.hgetall(p + STEP_THROTTLED_SECONDS_KEY).items():
        of(agent).throttled_seconds = float(seconds)
    for name, steps in agents.items():
        for index, count in conn.hgetall(f"{p}{STEP_BUCKETS_KEY_PREFIX}{name}").items():
            i = int(index)
            if 0 <= i < len(BUCKETS):
                steps.buckets[i] = int(count)
    return agents
