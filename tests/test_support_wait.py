"""The polling helper the other tests wait with."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.support.wait import eventually


def test_returns_the_first_truthy_value() -> None:
    values: Iterator[object] = iter([0, [], None, "ready", "later"])
    assert eventually(lambda: next(values), 5, "a value", interval=0) == "ready"


def test_an_assertion_error_means_not_yet() -> None:
    calls = itertools.count(1)

    def check() -> int:
        n = next(calls)
        assert n >= 3, f"only {n} calls"
        return n

    assert eventually(check, 5, "three calls", interval=0) == 3


def test_checks_at_least_once_even_without_time() -> None:
    assert eventually(lambda: 42, 0, "the answer") == 42


def test_timeout_names_what_and_the_last_value() -> None:
    with pytest.raises(AssertionError, match=r"waiting for the queue to drain; last value: \[\]$"):
        eventually(list, 0.1, "the queue to drain")
    values = iter(range(1000))
    with pytest.raises(AssertionError, match=r"timed out after 0.1s waiting for zero; last value: 0$"):
        eventually(lambda: next(values) * 0, 0.1, "zero", interval=0.01)


def test_timeout_names_the_last_assertion_error() -> None:
    def check() -> bool:
        raise AssertionError("status is queued")

    with pytest.raises(
        AssertionError, match="waiting for the run to start; last error: status is queued"
    ) as info:
        eventually(check, 0.1, "the run to start")
    assert isinstance(info.value.__cause__, AssertionError)


def test_a_check_that_returns_none_gets_a_hint() -> None:
    def check() -> None:
        assert True

    with pytest.raises(AssertionError, match="returns a truthy value when it passes"):
        eventually(check, 0.05, "nothing")


def test_other_errors_end_the_wait_at_once() -> None:
    calls = itertools.count(1)

    def check() -> bool:
        next(calls)
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        eventually(check, 5, "a broken check")
    assert next(calls) == 2
