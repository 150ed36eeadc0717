"""One try of one agent step: read, mark running, keep the input it runs with, call the agent,
write the outcome.

The record keeps the input the agent ran with (:mod:`orchestration.engine.inputs`), written when
the try starts, before the call, so a try that never ends shows it too; the next try rewrites it
only when it differs (a retried run whose payload was patched).

A try that never ended (its process died, its worker went away) is found by the next one and
counted against the step's retry policy (:mod:`orchestration.engine.tries`). A try that ends after
its run was cancelled or past its deadline is recorded as what it was, with a note, never hidden;
past the deadline the run fails, never ``succeeded``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery.exceptions import TimeLimitExceeded
from pydantic import BaseModel
from sqlalchemy.engine import Connection

from orchestration.engine import tries
from orchestration.engine.context import (
    StepContext,
    agent_config,
    flow_of,
    gate_run,
    resolve_step,
    step_input,
)
from orchestration.engine.inputs import parse_input
from orchestration.engine.limits import StepLimits, call_with_limits, step_limits
from orchestration.engine.nodes import finalize
from orchestration.engine.outcome import Action, Outcome
from orchestration.engine.writer import writer
from orchestration.flows.model import StepNode
from orchestration.flows.retry import RetryPolicy
from orchestration.names import NOTE_AFTER_CANCEL, NOTE_AFTER_DEADLINE, RunStatus
from orchestration.registry import AgentSpec
from orchestration.step_error import StepError
from orchestration.store import repository as repo
from orchestration.store import sql_engine
from orchestration.store.db import autocommit

#: How a try calls its agent: ``call(spec, input, context, limits)``.
AgentCall = Callable[[AgentSpec, BaseModel, StepContext, StepLimits], Any]


def call_direct(spec: AgentSpec, inp: BaseModel, ctx: StepContext, limits: StepLimits) -> Any:
    """On the workers: the call itself; Celery enforces the limits (see ``tasks/agent_tasks.py``)."""
    return spec.handler(inp, ctx)


def call_limited(spec: AgentSpec, inp: BaseModel, ctx: StepContext, limits: StepLimits) -> Any:
    """Inline: the call within the limits, enforced here (:func:`call_with_limits`)."""
    return call_with_limits(spec.handler, inp, ctx, limits)


@dataclass(frozen=True)
class _Try:
    run_id: str
    step_id: str
    node: StepNode
    policy: RetryPolicy
    start: repo.StepStart
    errors: list[dict[str, Any]]  # the failed (and lost) tries before this one
    final: bool
    deadline_at: datetime | None

    def past_deadline(self, now: datetime) -> bool:
        return self.deadline_at is not None and now > self.deadline_at


def run_agent_step(
    run_id: str,
    step_id: str,
    *,
    spec: AgentSpec,
    final: bool = False,
    lost: str | None = None,
    call: AgentCall = call_direct,
    task_id: str | None = None,
) -> Outcome:
    """One try of one agent step. Calls the agent only when the record is not already succeeded
    and the step has tries left.

    ``spec`` is the agent the caller runs (the Celery task's agent); it must be the step's.
    ``lost`` is why the try before this one was lost, when the worker saw it (``exit code 13``).
    ``task_id`` is the Celery task running the try (kept with its start in the record's ``tries``).
    """
    with autocommit() as conn:  # one statement reads the run and begins the step (Postgres)
        state, start = repo.start_step(conn, run_id, step_id, spec.name, task_id)
        if start is None:  # the run is not live, or past its deadline
            return gate_run(conn, state) or Outcome(Action.STOP)
        _flow, index = flow_of(state)
        node, scope = resolve_step(state, index, step_id)
        if node.agent != spec.name:
            raise ValueError(f"step {step_id!r} runs agent {node.agent!r}, not {spec.name!r}")
    if start.already_done:
        if final:  # a redelivered last step whose record is in: the run may still need ending
            finalize(run_id)
        return Outcome(Action.CONTINUE)

    errors = tries.with_lost_tries(start, lost)
    step = _Try(run_id, step_id, node, node.retry or spec.retry, start, errors, final, state.deadline_at)
    if errors != start.attempt_errors:
        with autocommit() as conn:
            repo.set_attempt_errors(conn, run_id, step_id, errors)
    if start.tries > step.policy.max_attempts:  # the budget went on lost tries: this is no try
        return _fail(step, tries.spent(errors, start.attempts - 1), errors, counted=False)

    inp = _keep_input(step, spec, scope)
    if isinstance(inp, Outcome):
        return inp
    ctx = StepContext(run_id, step_id, start.attempts, agent_config())
    limits = step_limits(node, spec, state.deadline_at, repo.utcnow())
    try:
        result = call(spec, inp, ctx, limits)
        output = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
    except Exception as exc:
        return _on_agent_error(step, exc)
    return _on_success(step, output)


def _keep_input(step: _Try, spec: AgentSpec, scope: dict[str, Any]) -> BaseModel | Outcome:
    """The input this try runs with, kept in the record before the agent is called (written only
    when it differs from what the record holds); the try's failure when it does not fit the agent's
    input model (the record keeps the resolved input then)."""
    try:
        raw = step_input(step.node, scope)
    except Exception as exc:  # nothing was resolved: there is no input to keep
        return _on_agent_error(step, exc)
    kept, parsed = parse_input(spec.input_model, raw)
    if kept != step.start.input:
        with autocommit() as conn:
            repo.keep_input(conn, step.run_id, step.step_id, kept)
    return parsed if isinstance(parsed, BaseModel) else _on_agent_error(step, parsed)


def _on_success(step: _Try, output: Any) -> Outcome:
    now = repo.utcnow()
    if step.past_deadline(now):
        return _late(step, "succeeded", output=output, errors=None)
    with writer(step.final) as conn:
        written = repo.finish_step(
            conn, step.run_id, step.step_id, status="succeeded", output=output, ends_run=step.final, now=now
        )
        if not written and repo.run_status(conn, step.run_id) == RunStatus.CANCELLED:
            repo.record_late_result(
                conn, step.run_id, step.step_id, status="succeeded", output=output, note=NOTE_AFTER_CANCEL
            )
            return Outcome(Action.STOP)
    return Outcome(Action.CONTINUE)


def _on_agent_error(step: _Try, exc: BaseException) -> Outcome:
    attempt = step.start.attempts
    err = StepError.from_exception(exc, attempt)
    errors = [*step.errors, err.as_dict()]
    if step.past_deadline(repo.utcnow()):  # no retry, no fallback: the run is out of time
        return _late(step, "failed", errors=errors, error=err)
    if isinstance(exc, TimeLimitExceeded):  # inline hard limit: the run fails, as on the workers
        hard = StepError.time_limit(exc.args[0] if exc.args else None)
        errors = [*step.errors, {**hard.as_dict(), "attempt": attempt}]
        return _fail(step, hard.as_dict(), errors, run_error=hard)
    if tries.retryable(exc, step.policy) and step.start.tries < step.policy.max_attempts:
        with sql_engine().begin() as conn:
            if not _record_failure(conn, step, "pending", err.as_dict(), errors):
                return Outcome(Action.STOP, error=err)
        return Outcome(Action.RETRY, countdown=step.policy.delay(step.start.tries), error=err)
    return _fail(step, err.as_dict(), errors)


def _record_failure(
    conn: Connection, step: _Try, status: str, error: dict[str, Any], errors: list[dict[str, Any]]
) -> bool:
    """Write a failed try (``pending``: another one follows); False when the run was cancelled
    meanwhile: the failure is then recorded as it was, after the cancel, and nothing follows."""
    args = (conn, step.run_id, step.step_id)
    if repo.finish_step(*args, status=status, error=error, attempt_errors=errors):
        return True
    if repo.run_status(conn, step.run_id) != RunStatus.CANCELLED:
        return True  # the record is done already (a duplicate delivery got there first)
    repo.record_late_result(
        *args, status="failed", error=error, attempt_errors=errors, note=NOTE_AFTER_CANCEL
    )
    return False


def _fail(
    step: _Try,
    error: dict[str, Any],
    errors: list[dict[str, Any]],
    *,
    counted: bool = True,
    run_error: StepError | None = None,
) -> Outcome:
    """The step failed for good: its fallback runs, or the run goes on (``on_error: continue``), or
    the run fails. ``counted=False``: the start that found the budget spent was no try.
    ``run_error``: the run fails with it whatever the step declares (a hard time limit)."""
    err = StepError.model_validate(error)
    with sql_engine().begin() as conn:
        if not counted:
            repo.fail_without_try(conn, step.run_id, step.step_id, error, errors)
        elif not _record_failure(conn, step, "failed", error, errors):
            return Outcome(Action.STOP, error=err)
        if run_error is not None:
            repo.finish_run(conn, step.run_id, "failed", run_error.for_step(step.step_id).as_dict())
            return Outcome(Action.FAILED, error=run_error)
        if step.node.fallback is not None:
            return Outcome(Action.FALLBACK, fallback=step.node.fallback, error=err)
        if step.node.on_error == "continue":
            if step.final:
                repo.succeed_run(conn, step.run_id)
            return Outcome(Action.CONTINUE, error=err)
        repo.finish_run(conn, step.run_id, "failed", err.for_step(step.step_id).as_dict())
    return Outcome(Action.FAILED, error=err)


def _late(
    step: _Try,
    status: str,
    *,
    output: Any = None,
    errors: list[dict[str, Any]] | None,
    error: StepError | None = None,
) -> Outcome:
    """A try that ended past the run's deadline: its outcome is kept with a note, the run fails
    (``DeadlineExceeded``, naming this step) unless it already ended."""
    deadline = StepError.deadline_exceeded(step.deadline_at)
    stored = StepError(type=deadline.type, message=deadline.message, attempt=step.start.attempts)
    with sql_engine().begin() as conn:
        cancelled = repo.run_status(conn, step.run_id) == RunStatus.CANCELLED
        repo.record_late_result(
            conn,
            step.run_id,
            step.step_id,
            status=status,
            output=output,
            error=stored.as_dict() if status == "failed" else None,
            attempt_errors=errors,
            note=NOTE_AFTER_CANCEL if cancelled else NOTE_AFTER_DEADLINE,
        )
        repo.finish_run(conn, step.run_id, "failed", deadline.for_step(step.step_id).as_dict())
    return Outcome(Action.STOP, error=error or deadline)


def sleep_for_retry(countdown: float) -> None:
    time.sleep(countdown)
