"""Step records, keyed by ``(run_id, step_id)``: a redelivered step updates its record, a succeeded
record is never overwritten, and the last write of a run can end it in the same statement."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestration.names import FINISHED_STEP_STATUSES, UNFINISHED_STEP_STATUSES, StepStatus
from orchestration.store.base import utcnow
from orchestration.store.queries import queries
from orchestration.store.states import RunState, StepStart
from orchestration.store.tables import step_t


def begin_step(
    conn: Connection, run_id: str, step_id: str, agent: str | None, task_id: str | None = None
) -> StepStart:
    """Mark the record ``running`` and count the attempt, unless it already succeeded or was skipped."""
    return queries(conn).begin_step(conn, run_id, step_id, agent, task_id)


def start_step(
    conn: Connection, run_id: str, step_id: str, agent: str, task_id: str | None = None
) -> tuple[RunState, StepStart | None]:
    """Read the run and begin the step (one statement on Postgres).

    The step is marked ``running`` (its attempt counted) and a queued run marked ``running`` only
    when the run is live and not past its deadline; otherwise the returned ``StepStart`` is None
    and the caller's gate decides. A step that already succeeded or was skipped comes back as it is.
    The try's start is added to the record's ``tries``, with ``task_id`` (the Celery task running it).
    """
    return queries(conn).start_step(conn, run_id, step_id, agent, task_id)


def keep_input(conn: Connection, run_id: str, step_id: str, value: Any) -> None:
    """Write the input the record's current try runs with (resolved, secrets redacted). The record
    is keyed by ``(run_id, step_id)``: a redelivery or another try updates it, never adds one, and
    nothing else clears it."""
    queries(conn).keep_input(conn, run_id, step_id, value)


def finish_step(
    conn: Connection,
    run_id: str,
    step_id: str,
    *,
    status: str,
    output: Any = None,
    error: dict[str, Any] | None = None,
    attempt_errors: list[dict[str, Any]] | None = None,
    ends_run: bool = False,
    now: datetime | None = None,
) -> bool:
    """Write the outcome of one attempt; False when nothing was written: the record had already
    succeeded or was skipped, or the run was cancelled meanwhile (see :func:`record_late_result`).

    ``ends_run``: when the record is written, the run ends ``succeeded`` too, atomically (one
    statement on Postgres; elsewhere the caller's transaction holds both), unless its deadline
    passed before ``now`` (default: the time of the write).
    """
    now = now or utcnow()
    params: dict[str, Any] = {
        "rid": run_id,
        "sid": step_id,
        "status": status,
        "output": output,
        "error": error,
        "now": now,
        "finished": now if status in FINISHED_STEP_STATUSES else None,
    }
    if attempt_errors is not None:
        params["attempt_errors"] = attempt_errors
    return queries(conn).finish_step(conn, params, ends_run=ends_run)


def record_late_result(
    conn: Connection,
    run_id: str,
    step_id: str,
    *,
    status: str,
    note: str,
    output: Any = None,
    error: dict[str, Any] | None = None,
    attempt_errors: list[dict[str, Any]] | None = None,
) -> bool:
    """A try that ended after its run ended (cancelled, or past its deadline): its outcome is
    recorded as what it was, with ``note`` saying when it came, never hidden. Applies to a record
    that was tried (``attempts > 0``) and is not already succeeded, the one that cancel closed
    included."""
    now = utcnow()
    values: dict[str, Any] = {
        "status": status,
        "output": output,
        "error": error,
        "note": note,
        "finished_at": now,
        "updated_at": now,
    }
    if attempt_errors is not None:
        values["attempt_errors"] = attempt_errors
    result = conn.execute(
        step_t.update()
        .where(
            step_t.c.run_id == run_id,
            step_t.c.step_id == step_id,
            step_t.c.attempts > 0,
            step_t.c.status.in_((*UNFINISHED_STEP_STATUSES, StepStatus.SKIPPED)),
        )
        .values(**values)
    )
    return bool(result.rowcount)


def set_attempt_errors(conn: Connection, run_id: str, step_id: str, errors: list[dict[str, Any]]) -> None:
    """Replace the record's list of failed tries (lost tries found when the next one starts)."""
    conn.execute(
        step_t.update()
        .where(step_t.c.run_id == run_id, step_t.c.step_id == step_id)
        .values(attempt_errors=errors, updated_at=utcnow())
    )


def take_over_try(conn: Connection, run_id: str, step_id: str, attempts: int) -> bool:
    """The record was begun twice by one message: the first time the answer never came back (the
    store went away), so the try counted then is the one this start goes on with. The record counts
    ``attempts - 1`` again; False when it no longer is ``running`` at ``attempts``."""
    result = conn.execute(
        step_t.update()
        .where(
            step_t.c.run_id == run_id,
            step_t.c.step_id == step_id,
            step_t.c.attempts == attempts,
            step_t.c.status == "running",
        )
        .values(attempts=attempts - 1)
    )
    return bool(result.rowcount)


def fail_without_try(
    conn: Connection, run_id: str, step_id: str, error: dict[str, Any], attempt_errors: list[dict[str, Any]]
) -> None:
    """The step's tries are spent (its last ones lost with their worker): the start that found it out
    is not a try; the record fails with ``error``."""
    now = utcnow()
    conn.execute(
        step_t.update()
        .where(step_t.c.run_id == run_id, step_t.c.step_id == step_id, step_t.c.status == "running")
        .values(
            status="failed",
            attempts=step_t.c.attempts - 1,
            error=error,
            attempt_errors=attempt_errors,
            finished_at=now,
            updated_at=now,
        )
    )


def record_step(
    conn: Connection,
    run_id: str,
    step_id: str,
    *,
    agent: str | None,
    status: str,
    output: Any = None,
    error: dict[str, Any] | None = None,
    ends_run: bool = False,
) -> None:
    """Insert-or-update a whole record in one statement (joins, branches, skips); ``ends_run`` as in
    :func:`finish_step`."""
    now = utcnow()
    values = {
        "run_id": run_id,
        "step_id": step_id,
        "agent": agent,
        "status": status,
        "attempts": 1 if status != "skipped" else 0,
        "output": output,
        "error": error,
        "started_at": now if status != "skipped" else None,
        "finished_at": now if status in FINISHED_STEP_STATUSES else None,
        "updated_at": now,
    }
    queries(conn).record_step(conn, values, ends_run=ends_run)


def skip_steps(conn: Connection, run_id: str, steps: list[tuple[str, str | None]]) -> None:
    """Record steps that will not run (an arm a branch did not take); existing records stay."""
    if not steps:
        return
    now = utcnow()
    rows = [
        {
            "run_id": run_id,
            "step_id": sid,
            "agent": agent,
            "status": "skipped",
            "attempts": 0,
            "finished_at": now,
            "updated_at": now,
        }
        for sid, agent in steps
    ]
    conn.execute(
        queries(conn).insert(step_t).values(rows).on_conflict_do_nothing(index_elements=["run_id", "step_id"])
    )


def close_open_steps(conn: Connection, run_id: str, error: dict[str, Any]) -> list[str]:
    """Records still ``pending`` or ``running`` (a cancelled run's: its steps, its map) become
    ``skipped`` with ``error``; a try still running records its result later
    (:func:`record_late_result`). Returns their step ids."""
    rows = conn.execute(
        step_t.update()
        .where(step_t.c.run_id == run_id, step_t.c.status.in_(UNFINISHED_STEP_STATUSES))
        .values(status="skipped", error=error, finished_at=utcnow(), updated_at=utcnow())
        .returning(step_t.c.step_id)
    ).all()
    return [r.step_id for r in rows]


def fail_unfinished_steps(conn: Connection, run_id: str, error: dict[str, Any]) -> list[str]:
    """Mark records still ``running`` or ``pending`` as failed (a lost worker, a hard time limit, a
    stall); a try that was running gets ``error`` in its list of failed tries too."""
    running = conn.execute(
        sa.select(step_t.c.step_id, step_t.c.attempts, step_t.c.attempt_errors).where(
            step_t.c.run_id == run_id, step_t.c.status == "running"
        )
    ).all()
    for row in running:
        entry = {**error, "attempt": row.attempts}
        conn.execute(
            step_t.update()
            .where(step_t.c.run_id == run_id, step_t.c.step_id == row.step_id, step_t.c.status == "running")
            .values(attempt_errors=[*(row.attempt_errors or []), entry])
        )
    rows = conn.execute(
        step_t.update()
        .where(step_t.c.run_id == run_id, step_t.c.status.in_(UNFINISHED_STEP_STATUSES))
        .values(status="failed", error=error, finished_at=utcnow(), updated_at=utcnow())
        .returning(step_t.c.step_id)
    ).all()
    return [r.step_id for r in rows]


def first_failed_step(conn: Connection, run_id: str) -> tuple[str, dict[str, Any] | None] | None:
    row = conn.execute(
        sa.select(step_t.c.step_id, step_t.c.error)
        .where(step_t.c.run_id == run_id, step_t.c.status == "failed")
        .order_by(step_t.c.finished_at)
        .limit(1)
    ).first()
    return (row.step_id, row.error) if row else None


def add_throttled(conn: Connection, run_id: str, step_id: str, seconds: float) -> None:
    """Add ``seconds`` a try waited for a cluster-wide permit to the record's ``throttled_seconds``."""
    conn.execute(
        step_t.update()
        .where(step_t.c.run_id == run_id, step_t.c.step_id == step_id)
        .values(throttled_seconds=sa.func.coalesce(step_t.c.throttled_seconds, 0) + seconds)
    )
