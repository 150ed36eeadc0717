"""The pure parts of step limits and try counting: limits capped by a deadline, lost tries found
from the record, and the inline call that enforces soft and hard limits in a helper thread."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from orchestration.engine.limits import MIN_LIMIT, StepLimits, call_with_limits, capped
from orchestration.engine.tries import with_lost_tries
from orchestration.store.states import StepStart

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("deadline_in", "expected"),
    [
        (None, StepLimits(30, 60)),
        (100.0, StepLimits(30, 60)),  # time enough: the step's own limits
        (10.0, StepLimits(10, 40)),  # the soft limit ends at the deadline, the hard one keeps its gap
        (-5.0, StepLimits(MIN_LIMIT, MIN_LIMIT + 30)),  # past it: a moment to see it and record it
    ],
)
def test_limits_are_capped_by_the_time_left(deadline_in: float | None, expected: StepLimits) -> None:
    deadline = None if deadline_in is None else NOW + timedelta(seconds=deadline_in)
    assert capped(30, 60, deadline, NOW) == expected


def start(attempts: int, errors: list[dict[str, Any]], retry_base: int = 0) -> StepStart:
    return StepStart("running", attempts, None, errors, retry_base)


def test_each_try_without_an_entry_is_recorded_as_lost() -> None:
    failed = {"type": "TransientAgentError", "message": "flaky", "attempt": 2}
    errors = with_lost_tries(start(4, [failed]), "exit code 13")
    assert [(e["type"], e["message"], e["attempt"]) for e in errors] == [
        ("WorkerLost", "worker lost: the try did not finish (its worker was killed or restarted)", 1),
        ("TransientAgentError", "flaky", 2),
        ("WorkerLost", "worker lost: exit code 13", 3),  # the cause the worker saw: the last try's
    ]
    assert with_lost_tries(start(1, [])) == []  # a first try has nothing before it
    assert with_lost_tries(start(2, [{**failed, "attempt": 1}])) == [{**failed, "attempt": 1}]


def test_only_the_current_budget_is_searched_for_lost_tries() -> None:
    errors = with_lost_tries(start(5, [], retry_base=3))  # tries 1-3 belong to the run before its retry
    assert [e["attempt"] for e in errors] == [4]


def nap(seconds: float) -> Any:
    def handler(inp: Any, ctx: Any) -> str:
        time.sleep(seconds)
        return "woke"

    return handler


def boom(inp: Any, ctx: Any) -> None:
    raise ValueError("boom")


def test_inline_limits_end_a_try_as_the_workers_would() -> None:
    quick = StepLimits(0.5, 1.0)
    assert call_with_limits(nap(0), None, None, quick) == "woke"
    with pytest.raises(ValueError, match="boom"):
        call_with_limits(boom, None, None, quick)

    begun = time.monotonic()
    with pytest.raises(SoftTimeLimitExceeded):  # blocked in sleep: Celery's signal would interrupt it
        call_with_limits(nap(5), None, None, StepLimits(0.1, 3.0))
    assert time.monotonic() - begun < 1.0  # not the hard limit, not the end of the sleep


def test_inline_soft_limit_reaches_python_code_and_a_swallowed_one_meets_the_hard_limit() -> None:
    def careful(inp: Any, ctx: Any) -> str:
        try:
            while True:
                time.sleep(0.01)
        except SoftTimeLimitExceeded:
            return "stopped cleanly"

    def stubborn(inp: Any, ctx: Any) -> str:
        end = time.monotonic() + 5
        while time.monotonic() < end:
            try:
                time.sleep(0.01)
            except Exception:  # swallows the soft limit
                continue
        return "too late"

    assert call_with_limits(careful, None, None, StepLimits(0.1, 2.0)) == "stopped cleanly"
    with pytest.raises(TimeLimitExceeded):
        call_with_limits(stubborn, None, None, StepLimits(0.1, 0.5))
