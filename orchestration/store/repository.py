"""The run repository: functions that take a ``Connection`` and write idempotently.

- A run is opened together with its event's idempotency key; the same key returns the same run.
- A step record is keyed by ``(run_id, step_id)``: a redelivered step updates its record.
- Terminal statuses are written with a conditional update, so one or many callers agree.

The functions live in ``base`` (tables, clock, helpers), ``runs``, ``step_records`` and
``envelopes``; this module is the one name callers import them by.
"""

from orchestration.store.base import _aware, _insert, key_t, run_t, step_t, utcnow
from orchestration.store.envelopes import RunSummary, get_envelope, list_runs
from orchestration.store.runs import (
    NewRun,
    RunState,
    finish_run,
    load_state,
    mark_run_running,
    open_run,
    run_status,
)
from orchestration.store.step_records import (
    StepStart,
    begin_step,
    discard_step,
    fail_unfinished_steps,
    finish_step,
    first_failed_step,
    record_step,
    skip_steps,
    start_step,
)

__all__ = [
    "NewRun",
    "RunState",
    "RunSummary",
    "StepStart",
    "_aware",
    "_insert",
    "begin_step",
    "discard_step",
    "fail_unfinished_steps",
    "finish_run",
    "finish_step",
    "first_failed_step",
    "get_envelope",
    "key_t",
    "list_runs",
    "load_state",
    "mark_run_running",
    "open_run",
    "record_step",
    "run_status",
    "run_t",
    "skip_steps",
    "start_step",
    "step_t",
    "utcnow",
]
