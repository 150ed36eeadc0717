"""The run repository: functions that take a ``Connection`` and write idempotently.

- A run is opened together with its event's idempotency key; the same key returns the same run.
- A step record is keyed by ``(run_id, step_id)``: a redelivered step updates its record.
- Terminal statuses are written with a conditional update, so one or many callers agree.

The functions live in ``runs``, ``transitions``, ``step_records`` and ``envelopes`` (the SQL that
differs per database in ``dialects``, picked by ``queries``); this module is the one name callers
import them by.
"""

from orchestration.store.base import aware, utcnow
from orchestration.store.envelopes import RunSummary, get_envelope, list_runs
from orchestration.store.queries import step_writer
from orchestration.store.runs import NewRun, load_state, lock_run, open_run, reopen_run
from orchestration.store.states import RunState, StepStart
from orchestration.store.step_records import (
    begin_step,
    close_open_steps,
    fail_unfinished_steps,
    fail_without_try,
    finish_step,
    first_failed_step,
    keep_input,
    note_step,
    record_late_result,
    record_step,
    set_attempt_errors,
    skip_steps,
    start_step,
    take_over_try,
)
from orchestration.store.transitions import finish_run, mark_run_running, run_status, succeed_run

__all__ = [
    "NewRun",
    "RunState",
    "RunSummary",
    "StepStart",
    "aware",
    "begin_step",
    "close_open_steps",
    "fail_unfinished_steps",
    "fail_without_try",
    "finish_run",
    "finish_step",
    "first_failed_step",
    "get_envelope",
    "keep_input",
    "list_runs",
    "load_state",
    "lock_run",
    "mark_run_running",
    "note_step",
    "open_run",
    "record_late_result",
    "record_step",
    "reopen_run",
    "run_status",
    "set_attempt_errors",
    "skip_steps",
    "start_step",
    "step_writer",
    "succeed_run",
    "take_over_try",
    "utcnow",
]
