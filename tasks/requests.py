"""The worker side of an agent task's message (Celery's ``Task.Request``): what the main worker
process decides about a try before and after the pool runs it.

- **Time limits capped by the run's deadline.** The worker asks a request for its ``time_limits``
  when it hands the message to the pool, so the limits are computed then, from the time the run has
  left (the ``deadline`` kwarg) and the step's own limits (the message's, else the task's): a step
  that starts late gets what is left, never more.
- **A lost try says why.** When the pool child running a try dies (``os._exit``, a segfault, the OOM
  killer), Celery publishes the task again (``task_retry_on_worker_lost``); the new message carries
  ``lost="exit code 13"``, so the next try records the lost one with its cause and counts it
  against the step's retry policy (``orchestration.engine.tries``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from billiard.einfo import ExceptionWithTraceback  # type: ignore[import-untyped]
from celery.exceptions import WorkerLostError
from celery.worker.request import Request

from orchestration.engine.limits import capped
from orchestration.engine.progress import StepProgress
from orchestration.timefmt import as_utc
from tasks.outage import OUTAGE_KWARG

_EXIT = re.compile(r"exitcode (-?\d+)")
_SIGNAL = re.compile(r"signal (\d+)(?: \((\w+)\))?")


def lost_reason(exc: BaseException) -> str:
    """``exit code 13`` or ``signal 11 (SIGSEGV)`` from what the pool reported, else its message."""
    text = str(exc)
    if isinstance(exc, SystemExit):
        return f"exit code {exc.code if isinstance(exc.code, int) else 1}"
    signal = _SIGNAL.search(text)
    if signal:
        return f"signal {signal[1]} ({signal[2]})" if signal[2] else f"signal {signal[1]}"
    code = _EXIT.search(text)
    if code:
        return f"exit code {code[1]}"
    return text or type(exc).__name__


class AgentRequest(Request):  # type: ignore[misc]
    """The request class of every agent task (``Task.Request``)."""

    _message_limits: tuple[float | None, float | None] = (None, None)

    @property
    def time_limits(self) -> tuple[float | None, float | None]:
        """``(hard, soft)`` for the pool, capped by the time left until the run's deadline."""
        hard, soft = self._message_limits
        deadline = self.kwargs.get("deadline") if isinstance(self.kwargs, dict) else None
        if not deadline:
            return hard, soft
        task = self.task
        limits = capped(
            float(soft or task.soft_time_limit),
            float(hard or task.time_limit),
            as_utc(deadline),
            datetime.now(UTC),
        )
        return limits.hard, limits.soft

    @time_limits.setter
    def time_limits(self, value: Any) -> None:
        hard, soft = value
        self._message_limits = (hard, soft)

    def on_failure(self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False) -> Any:
        exc = exc_info.exception
        if isinstance(exc, ExceptionWithTraceback):
            exc = exc.exc
        if isinstance(exc, WorkerLostError | SystemExit):
            # the retry Celery publishes is built from this context: it carries the cause, and
            # no store outage of the lost delivery (the try it began counts as lost)
            kwargs = {k: v for k, v in (self._context.kwargs or {}).items() if k != OUTAGE_KWARG}
            progress = kwargs.get("progress")
            if isinstance(progress, dict):
                StepProgress(progress).forget_try()
            self._context.kwargs = {**kwargs, "lost": lost_reason(exc)}
        return super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)
