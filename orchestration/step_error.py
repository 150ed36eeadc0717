"""The one way to build an error record: what a step record's ``error`` and ``attempt_errors`` and a
run's ``error`` hold, and what the envelope shows.

A :class:`StepError` is data, not an exception: the engine, the errback, the sweeper and run control
build one with a constructor below and store :meth:`StepError.as_dict`. A foundation module beside
``errors`` and ``names``: it imports nothing of ours.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from orchestration.timefmt import UtcDatetime, iso_utc


class StepError(BaseModel):
    """Why a step try, a step or a run failed (or was cancelled).

    ``type`` is an exception class name or one of the engine's own reasons (``DeadlineExceeded``,
    ``Stalled``, ``Cancelled``, ``MapInputError``, ``TaskFailed``, ``WorkerLost``,
    ``TimeLimitExceeded``). The stored JSON holds ``type``
    and ``message`` plus the fields a constructor gave (see :meth:`as_dict`); the envelope shows
    every field but ``task_id``.
    """

    type: str
    message: str
    attempt: int | None = None
    at: UtcDatetime | None = None
    step_id: str | None = Field(None, description="On the run's error: the step that failed it.")
    task_id: str | None = Field(None, exclude=True, description="The Celery task that failed (stored only).")

    # ------------------------------------------------------------------------------ constructors

    @classmethod
    def from_exception(
        cls, exc: BaseException, attempt: int | None = None, step_id: str | None = None
    ) -> StepError:
        """A try that raised ``exc``: its class name, its message, the try number and when."""
        error = cls(type=_type_of(exc), message=_message_of(exc), attempt=attempt, at=datetime.now(UTC))
        return error if step_id is None else error.for_step(step_id)

    @classmethod
    def deadline_exceeded(
        cls, deadline_at: datetime | None = None, *, found_by: str | None = None
    ) -> StepError:
        """The run's deadline passed (``found_by`` names who noticed, when not the step's own gate)."""
        when = f" {deadline_at.isoformat()}" if deadline_at is not None else ""
        by = f" (found by {found_by})" if found_by else ""
        return cls(type="DeadlineExceeded", message=f"run deadline{when} passed{by}")

    @classmethod
    def stalled(cls, stall_seconds: float, redrives: int) -> StepError:
        """The sweeper gave up on a run with no progress after its re-drives."""
        return cls(type="Stalled", message=f"no progress for {stall_seconds:.0f}s after {redrives} re-drives")

    @classmethod
    def cancelled(cls) -> StepError:
        """The run was cancelled on request (the run's error)."""
        return cls(type="Cancelled", message="cancelled on request")

    @classmethod
    def cancelled_open(cls) -> StepError:
        """A record still open when its run was cancelled: closed ``skipped``. A try still running
        records its result when it ends (with a note), never hidden."""
        return cls(type="Cancelled", message="the run was cancelled before this step finished")

    @classmethod
    def worker_lost(cls, attempt: int, reason: str | None = None) -> StepError:
        """A try that never ended: its process died (``reason``: ``exit code 13``, ``signal 11
        (SIGSEGV)``) or its whole worker went away (no reason known)."""
        what = reason or "the try did not finish (its worker was killed or restarted)"
        return cls(type="WorkerLost", message=f"worker lost: {what}", attempt=attempt)

    @classmethod
    def time_limit(cls, seconds: float | None, attempt: int | None = None) -> StepError:
        """The hard time limit ended a try (its process killed on the workers)."""
        limit = f" ({seconds:g}s)" if seconds is not None else ""
        message = f"hard time limit{limit} exceeded"
        if attempt is None:
            return cls(type="TimeLimitExceeded", message=message)
        return cls(type="TimeLimitExceeded", message=message, attempt=attempt)

    @classmethod
    def map_input(cls, over: str, items: object, step_id: str) -> StepError:
        """A map's ``over`` reference did not give a list."""
        return cls(
            type="MapInputError", message=f"{over} is {type(items).__name__}, not a list", step_id=step_id
        )

    @classmethod
    def wait_timed_out(cls, step_id: str, signal: str, timeout: str | None) -> StepError:
        """A ``wait`` with no ``on_timeout`` saw its timeout pass before its signal came."""
        return cls(
            type="WaitTimedOut",
            message=f"no {signal!r} signal within {timeout}; add on_timeout to go on instead",
            step_id=step_id,
        )

    @classmethod
    def bad_time(cls, step_id: str, message: str) -> StepError:
        """A ``sleep``'s time cannot be worked out from the run's data (``message`` names the field)."""
        return cls(type="TimeInputError", message=message, step_id=step_id)

    @classmethod
    def task_failed(cls, task_id: str | None = None, outcome: BaseException | str | None = None) -> StepError:
        """The run-failure errback's reason: the failed task's exception, or the state it ended in."""
        if not task_id:
            return cls(type="TaskFailed", message="a task of this run failed")
        if isinstance(outcome, BaseException):
            return cls(type=_type_of(outcome), message=_message_of(outcome), task_id=task_id)
        return cls(type="TaskFailed", message=f"task {task_id} ended {outcome}", task_id=task_id)

    # -------------------------------------------------------------------------------- using one

    def for_step(self, step_id: str | None) -> StepError:
        """The same error naming the step it came from (a run's error names the step that failed it)."""
        return self.model_copy(update={"step_id": step_id})

    def as_dict(self) -> dict[str, Any]:
        """The stored JSON: ``type`` and ``message``, then each other field a constructor set (a set
        ``None`` included, as ``null``); ``at`` in the one timestamp format (``...Z``)."""
        given = self.model_fields_set
        out: dict[str, Any] = {"type": self.type, "message": self.message}
        if "attempt" in given:
            out["attempt"] = self.attempt
        if "at" in given:
            out["at"] = iso_utc(self.at)
        if "step_id" in given:
            out["step_id"] = self.step_id
        if "task_id" in given:
            out["task_id"] = self.task_id
        return out


def _type_of(exc: BaseException) -> str:
    return type(exc).__name__


def _message_of(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
