"""A step's time limits: the soft and the hard one, both capped by the time its run has left.

On the workers Celery enforces them: the agent task's request (``tasks/requests.py``) asks
:func:`capped` for its limits when the worker hands it to the pool, so a step that starts late gets
what is left of the run's deadline, not its full limits. Inline, :func:`call_with_limits` enforces
the same limits in the caller's process, with the errors the workers record.
"""

from __future__ import annotations

import contextvars
import ctypes
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from orchestration.flows.model import StepNode
from orchestration.registry import AgentSpec

#: The shortest soft limit handed out: a step that starts at (or past) its run's deadline still
#: gets the moment it needs to see the deadline and record it, not a limit that fires first.
MIN_LIMIT = 1.0
#: Inline: how long an agent has to show it got its soft limit before it counts as blocked in a call.
SOFT_GRACE = 0.2


@dataclass(frozen=True)
class StepLimits:
    """Seconds from the start of a try: ``soft`` raises in the agent, ``hard`` ends the try."""

    soft: float
    hard: float


def capped(soft: float, hard: float, deadline_at: datetime | None, now: datetime) -> StepLimits:
    """``soft`` and ``hard`` capped by the time left until ``deadline_at``: the soft limit ends at the
    deadline at the latest, and the hard one keeps its distance to the soft one (the agent's time to
    stop cleanly)."""
    if deadline_at is None:
        return StepLimits(soft, hard)
    left = max((deadline_at - now).total_seconds(), MIN_LIMIT)
    if left >= soft:
        return StepLimits(soft, hard)
    return StepLimits(left, min(hard, left + (hard - soft)))


def step_limits(node: StepNode, spec: AgentSpec, deadline_at: datetime | None, now: datetime) -> StepLimits:
    """The limits of one try of ``node``: the flow's, else the agent's, capped by the deadline."""
    soft = node.soft_time_limit or spec.soft_time_limit
    hard = node.time_limit or spec.time_limit
    return capped(soft, hard, deadline_at, now)


def call_with_limits(handler: Callable[[Any, Any], Any], inp: Any, ctx: Any, limits: StepLimits) -> Any:
    """``handler(inp, ctx)`` in a helper thread, within ``limits``, ending as a try on the workers
    ends.

    At the soft limit the agent gets ``SoftTimeLimitExceeded`` raised in its thread. A try that then
    ends is its own outcome (the exception, or the value of an agent that stopped cleanly). A thread
    blocked in a call (``sleep``, a socket read) cannot see the exception before the call returns:
    after :data:`SOFT_GRACE` it is left behind and the try ends with ``SoftTimeLimitExceeded``, as
    Celery's signal would have interrupted the call. An agent that took the exception and goes on
    gets until the hard limit, then ``TimeLimitExceeded`` (Celery would kill its process).
    """
    outcome: dict[str, Any] = {}
    seen = threading.Event()
    context = contextvars.copy_context()

    class SoftLimit(SoftTimeLimitExceeded):  # type: ignore[misc]
        """Celery's exception, noting that the agent's thread got it."""

        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            seen.set()

    SoftLimit.__name__ = SoftLimit.__qualname__ = SoftTimeLimitExceeded.__name__  # recorded as Celery's

    def target() -> None:
        try:
            outcome["value"] = context.run(handler, inp, ctx)
        except BaseException as exc:  # handed over to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=f"agent-{getattr(ctx, 'step_id', '')}", daemon=True)
    thread.start()
    thread.join(limits.soft)
    if thread.is_alive():
        _raise_in(thread, SoftLimit)
        gap = max(limits.hard - limits.soft, 0.0)
        thread.join(min(gap, SOFT_GRACE))
        if thread.is_alive() and seen.is_set():
            thread.join(max(gap - SOFT_GRACE, 0.0))
    if thread.is_alive():  # left behind: a daemon thread, its outcome unread
        raise TimeLimitExceeded(limits.hard) if seen.is_set() else SoftTimeLimitExceeded()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _raise_in(thread: threading.Thread, exc: type[BaseException]) -> None:
    """Raise ``exc`` in ``thread`` at its next Python instruction."""
    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(exc))
