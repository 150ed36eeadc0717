"""The gate an agent step passes before its try begins: the step's cluster-wide limits, its key,
one permit from Redis, or a countdown to come back.

A step that is refused is put back with a countdown computed from when a permit should be free
(jittered, below the broker's visibility timeout); its message carries since when it waits
(:class:`Throttle`), so the time it spent throttled lands in its record when it finally runs, and
it is no try: nothing was begun. Limits: the ``CAMPAIGNFLOW_LIMITS`` setting over the step's
``limits:`` over the agent's.
"""

from __future__ import annotations

import logging
import os
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import redis

from orchestration.engine import step_metrics
from orchestration.engine.context import flow_of, resolve_step, step_input
from orchestration.engine.permits.holder import Decision, Limit, Permits, jittered
from orchestration.engine.permits.keeper import LeaseKeeper
from orchestration.flows.limits import KeyRef, LimitDecl, parse_limits_setting
from orchestration.registry import AgentSpec
from orchestration.settings import get_settings
from orchestration.store import repository as repo
from orchestration.store.db import autocommit
from orchestration.store.step_records import add_throttled

log = logging.getLogger(__name__)

#: When the step running in this context got its permit (Redis's clock), or None.
_granted: ContextVar[float | None] = ContextVar("campaignflow_permit_granted", default=None)


def granted_at() -> float | None:
    """When the step running here was granted its permit (Redis's clock, seconds since the epoch);
    None when it asked for none. The limits hold on these times: a step starts a little later."""
    return _granted.get()


#: The keyword of a put-back step's message: ``{"since", "key", "waits"}``.
THROTTLE_KWARG = "throttle"
#: The keyword of a step's message with its flow's ``limits:`` (the compiler puts it there).
LIMITS_KWARG = "limits"
#: A countdown stays this far below the broker's visibility timeout (an ETA held longer is
#: delivered again) and never goes past this many seconds.
MAX_COUNTDOWN = 60.0


class Throttled(Exception):
    """Raised (as the ``exc`` of Celery's retry) when a step is put back to wait for a permit;
    never recorded as a failed try."""

    retryable = True


@lru_cache(maxsize=1)
def _setting_limits(text: str) -> dict[str, LimitDecl]:
    return parse_limits_setting(text)


def declared(spec: AgentSpec, step: dict[str, Any] | None) -> LimitDecl:
    """The step's limits: the setting over the flow's ``limits:`` over the agent's."""
    decl = spec.limits
    if step:
        decl = LimitDecl.model_validate(step).over(decl)
    over = _setting_limits(get_settings().limits).get(spec.name)
    return over.over(decl) if over is not None else decl


_permits: dict[int, tuple[Permits, LeaseKeeper]] = {}


def permits() -> tuple[Permits, LeaseKeeper] | None:
    """This process's permits on the broker's Redis (None when the broker is not Redis: then
    there is one process, and the global limits are not enforced)."""
    pid = os.getpid()
    found = _permits.get(pid)
    if found is not None:
        return found
    s = get_settings()
    url = s.broker_url
    if not url or not url.startswith(("redis://", "rediss://")):
        return None
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    holder = Permits(client, s.redis_key_prefix or "", s.limit_lease_seconds)
    keeper = LeaseKeeper(holder.renew, max(s.limit_lease_seconds / 3, 0.2))
    _permits.clear()
    _permits[pid] = (holder, keeper)
    return holder, keeper


def reset() -> None:
    """Forget this process's client (settings changed: tests)."""
    _permits.clear()
    _setting_limits.cache_clear()


@dataclass
class Throttle:
    """What a put-back step's message carries: since when it waits, its key, how often it was put back."""

    since: float
    key: str | None = None
    waits: int = 0

    @classmethod
    def read(cls, value: Any) -> Throttle | None:
        if not isinstance(value, dict):
            return None
        try:
            return cls(float(value["since"]), value.get("key"), int(value.get("waits") or 0))
        except (KeyError, TypeError, ValueError):
            return None

    def as_json(self) -> dict[str, Any]:
        return {"since": self.since, "key": self.key, "waits": self.waits}


@dataclass
class StepGate:
    """One delivery of one limited step: :meth:`admit`, then :meth:`done` when the step ends."""

    spec: AgentSpec
    run_id: str
    step_id: str
    decl: LimitDecl
    priority: int = 0
    throttle: Throttle | None = None
    limit: Limit | None = None
    decision: Decision | None = None
    started: float = field(default_factory=time.time)

    @property
    def holder(self) -> str:
        return f"{self.run_id}:{self.step_id}"

    def admit(self) -> Decision | None:
        """A permit (or a wait); None when the step has no limit or there is no Redis."""
        found = permits()
        if found is None or not self.decl.limited:
            return None
        holder, keeper = found
        key = self._key()
        self.limit = Limit(self.spec.name, key, self.decl.global_concurrency, self.decl.global_rate_limit)
        self.decision = holder.acquire(self.limit, self.holder, self.priority)
        _granted.set(self.decision.at if self.decision.granted else None)
        if self.decision.granted and self.limit.concurrency:
            keeper.hold(holder.keys(self.limit.agent, self.limit.key)["leases"], self.holder)
        return self.decision

    def countdown(self) -> float:
        """When to come back, jittered, below the visibility timeout."""
        assert self.decision is not None
        s = get_settings()
        ceiling = min(MAX_COUNTDOWN, max(s.visibility_timeout / 2, 1.0))
        return jittered(self.decision.wait, ceiling)

    def carry(self) -> dict[str, Any]:
        """The ``throttle`` keyword of the message that comes back."""
        first = self.throttle or Throttle(self.started)
        key = self.limit.key if self.limit is not None and self.decl.limit_key else None
        return Throttle(first.since, key, first.waits + 1).as_json()

    def throttled_seconds(self) -> float:
        return max(0.0, self.started - self.throttle.since) if self.throttle is not None else 0.0

    def done(self) -> None:
        """The step ended (however): give the permit back; record the time it waited for it."""
        found = permits()
        if found is not None and self.limit is not None and self.decision is not None:
            holder, keeper = found
            if self.decision.granted and self.limit.concurrency:
                keeper.drop(holder.keys(self.limit.agent, self.limit.key)["leases"], self.holder)
                try:
                    holder.release(self.limit, self.holder)
                except redis.RedisError as exc:  # the lease runs out by itself
                    log.warning("could not release the permit of %s: %s", self.holder, exc)
        _granted.set(None)
        waited = self.throttled_seconds()
        if waited > 0:
            step_metrics.record_throttled(self.spec.name, waited)
            with autocommit() as conn:
                add_throttled(conn, self.run_id, self.step_id, waited)

    def _key(self) -> str:
        if self.decl.limit_key is None:
            return ""
        if self.throttle is not None and self.throttle.key is not None:
            return self.throttle.key  # resolved when the step was first put back
        ref = KeyRef.parse(self.decl.limit_key)
        with autocommit() as conn:
            state = repo.load_state(conn, self.run_id)
        _flow, index = flow_of(state)
        node, scope = resolve_step(state, index, self.step_id)
        try:
            scope = {**scope, "input": step_input(node, scope)}
        except Exception:  # an input that does not resolve: the try fails on it, under key ""
            scope = {**scope, "input": None}
        return ref.value(scope)
