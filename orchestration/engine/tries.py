"""Counting a step's tries: which errors are worth another try, and the tries that were lost.

Every try that ends leaves its error in the record's ``attempt_errors`` (or succeeds), so when try
``n`` begins, each earlier try of the current budget without an entry never ended: its process died
(``os._exit``, a segfault, the OOM killer) or its whole worker went away. The next try records it
as lost, and it counts against the step's retry policy like any failed try.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from orchestration.flows.retry import RetryPolicy
from orchestration.step_error import StepError
from orchestration.store.states import StepStart


def retryable(exc: BaseException, policy: RetryPolicy) -> bool:
    """Whether another try may help: not for bad input, a class the policy names, or an error
    that says so (``retryable = False``)."""
    if isinstance(exc, ValidationError) or type(exc).__name__ in policy.non_retryable:
        return False
    return bool(getattr(exc, "retryable", True))


def with_lost_tries(start: StepStart, reason: str | None = None) -> list[dict[str, Any]]:
    """The record's failed tries plus one ``WorkerLost`` entry for each earlier try of the current
    budget that left none. ``reason`` (what the worker saw: ``exit code 13``) describes the try just
    before this one; others get a generic message."""
    errors = list(start.attempt_errors)
    recorded = {e.get("attempt") for e in errors if isinstance(e, dict)}
    last = start.attempts - 1
    lost = [n for n in range(start.retry_base + 1, start.attempts) if n not in recorded]
    if not lost:
        return errors
    errors += [StepError.worker_lost(n, reason if n == last else None).as_dict() for n in lost]
    return sorted(errors, key=lambda e: e.get("attempt") or 0)


def spent(errors: list[dict[str, Any]], attempts: int) -> dict[str, Any]:
    """The error a step fails with when its tries are spent: the last try's."""
    if errors:
        return errors[-1]
    return StepError(type="WorkerLost", message="worker lost: no try finished", attempt=attempts).as_dict()
