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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from celery.exceptions import TimeLimitExceeded
from pydantic import BaseModel
from sqlalchemy.engine import Connection

from orchestration.engine import starts, tries
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
from orchestration.engine.progress import StepProgress
from orchestration.engine.writer import writer
from orchestration.flows.model import StepNode
from orchestration.flows.retry import RetryPolicy
from orchestration.names import DONE_STEP_STATUSES, NOTE_AFTER_CANCEL, NOTE_AFTER_DEADLINE, RunStatus
from orchestration.registry import AgentSpec
from orchestration.step_error import StepError
from orchestration.store import repository as repo
from orchestration.store import sql_engine
from orchestration.store.db import autocommit
from orchestration.timefmt import as_utc, iso_utc

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
    scope: dict[str, Any]
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
    progress: StepProgress | None = None,
    task_id: str | None = None,
    publication: Mapping[str, Any] | None = None,
) -> Outcome:
    """One try of one agent step. Calls the agent only when the record is not already succeeded
    and the step has tries left.

    ``spec`` is the agent the caller runs (the Celery task's agent); it must be the step's.
    ``lost`` is why the try before this one was lost, when the worker saw it (``exit code 13``).
    ``progress`` is how far an earlier delivery of the same message got before the store went
    away (:mod:`orchestration.engine.progress`); it is updated as this one goes, so a store error
    raised from here leaves in it what the next delivery needs: a try already counted is not
    counted again, an agent already called is not called again, its outcome is only written.
    ``task_id`` is the Celery task running the try (kept with its start in the record's ``tries``).
    ``publication``: the task begins a published canvas (its ``start`` keyword); before its try
    begins, the step stops unless it takes the run's publication (``orchestration.engine.starts``).
    """
    progress = progress if progress is not None else StepProgress()
    known = progress.start()
    if known is None:
        if not starts.take(run_id, publication):
            return Outcome(Action.STOP)
        begun = _begin(run_id, step_id, spec, final, lost, progress, task_id)
    else:
        begun = _go_on(run_id, step_id, spec, final, known, progress)
    if isinstance(begun, Outcome):
        return begun
    outcome = progress.outcome
    if outcome is None:
        outcome = _call(begun, spec, call)
        progress.called(outcome)
    if "error" in outcome:
        return _on_failure(begun, outcome)
    if "skipped" in outcome:
        return _on_skip(begun, outcome.get("output"), outcome["skipped"])
    return _on_success(begun, outcome.get("output"), as_utc(outcome["at"]))


def _begin(
    run_id: str,
    step_id: str,
    spec: AgentSpec,
    final: bool,
    lost: str | None,
    progress: StepProgress,
    task_id: str | None = None,
) -> Outcome | _Try:
    """Read the run and begin the step, counting the try."""
    retaking = progress.maybe_begun  # an earlier delivery's start may have counted a try unseen
    with autocommit() as conn:  # one statement reads the run and begins the step (Postgres)
        progress.beginning()
        state, start = repo.start_step(conn, run_id, step_id, spec.name, task_id)
        if start is None:  # the run is not live, or past its deadline
            return gate_run(conn, state) or Outcome(Action.STOP)
        node, scope = _node(state, step_id, spec)
        if retaking and not start.already_done:
            start = _take_over(conn, run_id, step_id, start)
    if start.already_done:
        if final:  # a redelivered last step whose record is in: the run may still need ending
            finalize(run_id)
        return Outcome(Action.CONTINUE)

    errors = tries.with_lost_tries(start, lost)
    progress.begun(start, errors)
    step = _Try(
        run_id, step_id, node, scope, node.retry or spec.retry, start, errors, final, state.deadline_at
    )
    return _within_budget(step, write_errors=errors != start.attempt_errors)


def _take_over(conn: Connection, run_id: str, step_id: str, start: repo.StepStart) -> repo.StepStart:
    """The try before this start left no entry: it is the one this message's earlier start counted
    without an answer, not a lost try. Go on with it instead of counting another."""
    previous = start.attempts - 1
    recorded = {e.get("attempt") for e in start.attempt_errors if isinstance(e, dict)}
    if previous <= start.retry_base or previous in recorded:
        return start
    if not repo.take_over_try(conn, run_id, step_id, start.attempts):
        return start
    return replace(start, attempts=previous)


def _go_on(
    run_id: str, step_id: str, spec: AgentSpec, final: bool, known: repo.StepStart, progress: StepProgress
) -> Outcome | _Try:
    """Go on with a try an earlier delivery began (counted then): call its agent, or only write
    its outcome when the agent was called."""
    called = progress.outcome is not None
    with autocommit() as conn:
        state = repo.load_state(conn, run_id)
        if not called:  # nothing happened yet: the run must still be live, the step still open
            gate = gate_run(conn, state)
            if gate is not None:
                return gate
            if state.statuses.get(step_id) in DONE_STEP_STATUSES:  # a duplicate delivery finished it
                if final:
                    finalize(run_id)
                return Outcome(Action.CONTINUE)
        node, scope = _node(state, step_id, spec)
    errors = known.attempt_errors
    step = _Try(
        run_id, step_id, node, scope, node.retry or spec.retry, known, errors, final, state.deadline_at
    )
    return step if called else _within_budget(step, write_errors=bool(errors))


def _node(state: repo.RunState, step_id: str, spec: AgentSpec) -> tuple[StepNode, dict[str, Any]]:
    _flow, index = flow_of(state)
    node, scope = resolve_step(state, index, step_id)
    if node.agent != spec.name:
        raise ValueError(f"step {step_id!r} runs agent {node.agent!r}, not {spec.name!r}")
    return node, scope


def _within_budget(step: _Try, *, write_errors: bool) -> Outcome | _Try:
    """Record the lost tries found; fail the step when they spent its budget."""
    if write_errors:
        with autocommit() as conn:
            repo.set_attempt_errors(conn, step.run_id, step.step_id, step.errors)
    if step.start.tries > step.policy.max_attempts:  # the budget went on lost tries: this is no try
        return _fail(step, tries.spent(step.errors, step.start.attempts - 1), step.errors, counted=False)
    return step


def _call(step: _Try, spec: AgentSpec, call: AgentCall) -> dict[str, Any]:
    """Keep the input the try runs with, then call the agent: ``{"output", "at"}``, or what it
    raised (:func:`_failure`). JSON only."""
    inp = _keep_input(step, spec)
    if not isinstance(inp, BaseModel):
        return inp
    campaign = step.scope.get("run", {}).get("campaign")
    ctx = StepContext(step.run_id, step.step_id, step.start.attempts, agent_config(), campaign)
    limits = step_limits(step.node, spec, step.deadline_at, repo.utcnow())
    try:
        result = call(spec, inp, ctx, limits)
        output = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
    except Exception as exc:
        if getattr(exc, "skip", False):  # the agent chose not to act (agents.errors.SkipStep)
            return {"output": getattr(exc, "output", None), "skipped": str(exc), "at": iso_utc(repo.utcnow())}
        return _failure(step, exc)
    return {"output": output, "at": iso_utc(repo.utcnow())}


def _keep_input(step: _Try, spec: AgentSpec) -> BaseModel | dict[str, Any]:
    """The input this try runs with, kept in the record before the agent is called (written only
    when it differs from what the record holds); the try's failure when it does not fit the agent's
    input model (the record keeps the resolved input then)."""
    try:
        raw = step_input(step.node, step.scope)
    except Exception as exc:  # nothing was resolved: there is no input to keep
        return _failure(step, exc)
    kept, parsed = parse_input(spec.input_model, raw)
    if kept != step.start.input:
        with autocommit() as conn:
            repo.keep_input(conn, step.run_id, step.step_id, kept)
    return parsed if isinstance(parsed, BaseModel) else _failure(step, parsed)


def _failure(step: _Try, exc: BaseException) -> dict[str, Any]:
    """A failed try, as data: its error, whether another try may help, the hard limit that ended it."""
    err = StepError.from_exception(exc, step.start.attempts)
    failure: dict[str, Any] = {"error": err.as_dict(), "retryable": tries.retryable(exc, step.policy)}
    if isinstance(exc, TimeLimitExceeded):  # inline hard limit: the run fails, as on the workers
        failure["hard_limit"] = exc.args[0] if exc.args else None
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int | float) and retry_after > 0:  # the remote side said when
        failure["retry_after"] = float(retry_after)
    return failure


def _on_success(step: _Try, output: Any, now: datetime) -> Outcome:
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


def _on_skip(step: _Try, output: Any, note: str) -> Outcome:
    """The agent chose not to act (a guard stopped a message): the record is ``skipped`` with the
    reason as its note and the agent's output, and the run goes on (or ends, from its last step)."""
    with sql_engine().begin() as conn:
        repo.note_step(conn, step.run_id, step.step_id, note)
        written = repo.finish_step(
            conn, step.run_id, step.step_id, status="skipped", output=output, ends_run=step.final
        )
        if not written and repo.run_status(conn, step.run_id) == RunStatus.CANCELLED:
            return Outcome(Action.STOP)
    return Outcome(Action.CONTINUE)


def _on_failure(step: _Try, failure: dict[str, Any]) -> Outcome:
    attempt = step.start.attempts
    error: dict[str, Any] = failure["error"]
    err = StepError.model_validate(error)
    errors = [*step.errors, error]
    if step.past_deadline(repo.utcnow()):  # no retry, no fallback: the run is out of time
        return _late(step, "failed", errors=errors, error=err)
    if "hard_limit" in failure:
        hard = StepError.time_limit(failure["hard_limit"])
        errors = [*step.errors, {**hard.as_dict(), "attempt": attempt}]
        return _fail(step, hard.as_dict(), errors, run_error=hard)
    if failure.get("retryable") and step.start.tries < step.policy.max_attempts:
        with sql_engine().begin() as conn:
            if not _record_failure(conn, step, "pending", error, errors):
                return Outcome(Action.STOP, error=err)
        countdown = max(step.policy.delay(step.start.tries), failure.get("retry_after") or 0.0)
        return Outcome(Action.RETRY, countdown=countdown, error=err)
    return _fail(step, error, errors)


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
