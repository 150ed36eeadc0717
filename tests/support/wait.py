"""Waiting for something that happens in another thread or process: one polling helper.

A check is a function of no arguments, in one of two styles:

- a *probe* returns a value, and is done once that value is truthy (``eventually`` returns it);
- an *assertion* asserts what it needs and returns a truthy value at its end (often the object it
  checked); an ``AssertionError`` means "not yet", and its message is kept for the failure.

Any other exception ends the wait at once and propagates (to fail early, for instance when the
process being waited for has died, raise ``pytest.fail(...)``). The outcome never depends on a fixed
sleep: the only sleeps here pace the polling.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_NOTHING = object()


def eventually(check: Callable[[], T], timeout: float, what: str, *, interval: float = 0.05) -> T:
    """Call ``check`` until it returns a truthy value without raising ``AssertionError``, at least
    once and for ``timeout`` seconds at most, ``interval`` seconds apart. Returns that value.

    On timeout raises ``AssertionError`` naming ``what`` (phrased as what is awaited: "run X to
    end") with the last value returned or the last assertion's message."""
    deadline = time.monotonic() + timeout
    last: object = _NOTHING
    last_error: AssertionError | None = None
    while True:
        try:
            value = check()
        except AssertionError as exc:
            last_error, last = exc, _NOTHING
        else:
            if value:
                return value
            last_error, last = None, value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        time.sleep(min(interval, remaining))
    if last_error is not None:
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what}; last error: {last_error}"
        ) from (last_error)
    hint = " (a check that asserts returns a truthy value when it passes)" if last is None else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}{hint}")
