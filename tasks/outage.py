"""Every task that touches the run store waits a store outage out: :func:`waits_out_store_outages`.

When the task's body raises an error that says the store could not be reached (a refused or cut
connection, the database starting up or shutting down: ``orchestration.store.outage``), the task is
tried again later with exponential backoff and jitter (1 s, 2 s, 4 s ... 15 s at most). The message
keeps, as JSON in its ``store_outage`` keyword, when its first outage began, so the budget
(``CAMPAIGNFLOW_STORE_OUTAGE_SECONDS``) is measured from there across its retries. A real SQL error
is not an outage and is raised as before.

When the budget is spent the task gives up: its ``give_up`` records a clear ``StoreUnavailable``
error (a run task fails its run with it) or raises it. When even that cannot reach the store, the
message comes back ``BACKOFF_CAP`` seconds later to record it then: no outage strands a run.

A task may name ``carry`` keywords: JSON dicts its body fills in as it goes (how far an agent step
got), sent back with the retry so the next delivery goes on from there.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, NoReturn

from celery import Task

from orchestration.errors import StoreUnavailable
from orchestration.settings import get_settings
from orchestration.store.outage import describe, is_store_outage
from orchestration.timefmt import as_utc, iso_utc

log = logging.getLogger(__name__)

#: The keyword of a retried message that says since when it has been waiting for the store.
OUTAGE_KWARG = "store_outage"
#: The first retry's delay and the longest one, in seconds.
BACKOFF_FIRST = 1.0
BACKOFF_CAP = 15.0

#: A task body: ``body(task, *args, **kwargs)``.
Body = Callable[..., Any]
#: What a task does once its budget is spent: ``give_up(task, error, *args, **kwargs)``.
GiveUp = Callable[..., Any]

_random = random.Random()


@dataclass(frozen=True)
class OutageClock:
    """Since when one message has been waiting for the store, how many times it was retried for
    it, and what the store last said."""

    since: datetime
    retries: int = 0
    reason: str = ""

    @classmethod
    def read(cls, value: Any) -> OutageClock | None:
        """The clock a message carries; None when it carries none (or one that does not parse)."""
        if not isinstance(value, dict):
            return None
        try:
            since = as_utc(str(value["since"]))
            retries = int(value.get("retries") or 0)
        except (KeyError, TypeError, ValueError):
            return None
        return cls(since, retries, str(value.get("reason") or ""))

    def as_json(self) -> dict[str, Any]:
        return {"since": iso_utc(self.since), "retries": self.retries, "reason": self.reason}

    def waited(self, now: datetime) -> float:
        return max(0.0, (now - self.since).total_seconds())

    def spent(self, now: datetime, budget: float) -> bool:
        return self.waited(now) >= budget

    def after(self, exc: BaseException) -> OutageClock:
        """One more retry for ``exc``."""
        return replace(self, retries=self.retries + 1, reason=describe(exc))

    def delay(self, now: datetime, budget: float, rng: random.Random = _random) -> float:
        """Seconds until the next try: :func:`backoff`, but never past the end of the budget."""
        return max(0.1, min(backoff(self.retries - 1, rng), budget - self.waited(now)))

    def unavailable(self, now: datetime, budget: float) -> StoreUnavailable:
        return StoreUnavailable(self.waited(now), budget, self.reason or "the run store did not answer")


def backoff(retries: int, rng: random.Random = _random) -> float:
    """Exponential backoff with jitter for the retry after ``retries`` earlier ones: a random
    point in the upper half of ``BACKOFF_FIRST * 2**retries``, capped at ``BACKOFF_CAP``, never
    below ``BACKOFF_FIRST``. The jitter spreads the retries of many tasks that met one outage."""
    ceiling = min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** min(max(retries, 0), 16))
    return max(BACKOFF_FIRST, rng.uniform(ceiling / 2, ceiling))


def give_up_raising(task: Task, error: StoreUnavailable, *_: Any, **__: Any) -> Any:
    """For a task with no run to fail (ingest, cancel, retry, the sweeper, the campaign tick): it
    fails with the ``StoreUnavailable`` error, which its caller sees as its result."""
    raise error


def _now() -> datetime:
    return datetime.now(UTC)


def waits_out_store_outages(
    give_up: GiveUp | None = None, *, carry: tuple[str, ...] = ()
) -> Callable[[Body], Body]:
    """Decorate a bound task's body (``body(task, *args, **kwargs)``) so that it waits a run store
    outage out (see the module). ``give_up``: None keeps waiting however long it takes (the
    run-failure errback, which has nothing else to record)."""

    def decorate(body: Body) -> Body:
        @functools.wraps(body)
        def task_body(task: Task, *args: Any, **kwargs: Any) -> Any:
            clock = OutageClock.read(kwargs.pop(OUTAGE_KWARG, None))
            for name in carry:
                if not isinstance(kwargs.get(name), dict):
                    kwargs[name] = {}
            budget = get_settings().store_outage_seconds
            try:
                if clock is None or give_up is None or not clock.spent(_now(), budget):
                    return body(task, *args, **kwargs)
            except Exception as exc:
                if not is_store_outage(exc):
                    raise
                clock = (clock or OutageClock(_now())).after(exc)
                if give_up is None or not clock.spent(_now(), budget):
                    _retry(task, args, kwargs, clock, clock.delay(_now(), budget), budget)
            assert clock is not None
            assert give_up is not None
            try:
                return give_up(task, clock.unavailable(_now(), budget), *args, **kwargs)
            except Exception as exc:
                if not is_store_outage(exc):
                    raise
                # not even the failure can be written yet: the message comes back to write it
                _retry(task, args, kwargs, clock.after(exc), BACKOFF_CAP, budget)

        return task_body

    return decorate


def _retry(
    task: Task, args: tuple[Any, ...], kwargs: dict[str, Any], clock: OutageClock, delay: float, budget: float
) -> NoReturn:
    """Publish the message again ``delay`` seconds from now with its clock; raises Celery's Retry."""
    log.warning(
        "run store unavailable (%s): %s[%s] tries again in %.1fs (%.0fs of the %gs budget waited)",
        clock.reason,
        task.name,
        task.request.id,
        delay,
        clock.waited(_now()),
        budget,
    )
    raise task.retry(
        args=args,
        kwargs={**kwargs, OUTAGE_KWARG: clock.as_json()},
        countdown=delay,
        max_retries=(task.request.retries or 0) + 1,  # the budget bounds these, not a count
    )
