"""One try of one agent step: read, mark running, call the agent, write the outcome."""

from __future__ import annotations

import time

from pydantic import BaseModel, ValidationError

from orchestration.engine.context import (
    StepContext,
    agent_config,
    flow_of,
    gate_run,
    resolve_step,
    step_input,
)
from orchestration.engine.nodes import finalize
from orchestration.engine.outcome import Action, Outcome
from orchestration.engine.writer import writer
from orchestration.flows.model import StepNode
from orchestration.flows.retry import RetryPolicy
from orchestration.registry import AgentSpec
from orchestration.step_error import StepError
from orchestration.store import repository as repo
from orchestration.store import sql_engine
from orchestration.store.db import autocommit


def _policy(node: StepNode, spec: AgentSpec) -> RetryPolicy:
    return node.retry or spec.retry


def _retryable(exc: BaseException, policy: RetryPolicy) -> bool:
    if isinstance(exc, ValidationError) or type(exc).__name__ in policy.non_retryable:
        return False
    return bool(getattr(exc, "retryable", True))


def run_agent_step(run_id: str, step_id: str, *, spec: AgentSpec, final: bool = False) -> Outcome:
    """One try of one agent step. Calls the agent only when the record is not already succeeded.

    ``spec`` is the agent the caller runs (the Celery task's agent); it must be the step's.
    """
    with autocommit() as conn:  # one statement reads the run and begins the step (Postgres)
        state, start = repo.start_step(conn, run_id, step_id, spec.name)
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

    policy = _policy(node, spec)
    ctx = StepContext(run_id, step_id, start.attempts, agent_config())
    try:
        inp = spec.input_model.model_validate(step_input(node, scope))
        result = spec.handler(inp, ctx)
        output = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
    except Exception as exc:
        return _on_agent_error(run_id, step_id, node, policy, start, exc, final)
    with writer(final) as conn:
        written = repo.finish_step(conn, run_id, step_id, status="succeeded", output=output, ends_run=final)
        if not written and repo.run_status(conn, run_id) == "cancelled":
            repo.discard_step(conn, run_id, step_id)
            return Outcome(Action.STOP)
    return Outcome(Action.CONTINUE)


def _on_agent_error(
    run_id: str,
    step_id: str,
    node: StepNode,
    policy: RetryPolicy,
    start: repo.StepStart,
    exc: BaseException,
    final: bool,
) -> Outcome:
    err = StepError.from_exception(exc, start.attempts)
    stored = err.as_dict()
    errors = [*start.attempt_errors, stored]
    retry = _retryable(exc, policy) and start.attempts < policy.max_attempts
    with sql_engine().begin() as conn:
        if retry:
            repo.finish_step(conn, run_id, step_id, status="pending", error=stored, attempt_errors=errors)
            return Outcome(Action.RETRY, countdown=policy.delay(start.attempts), error=err)
        repo.finish_step(conn, run_id, step_id, status="failed", error=stored, attempt_errors=errors)
        if node.fallback is not None:
            return Outcome(Action.FALLBACK, fallback=node.fallback, error=err)
        if node.on_error == "continue":
            if final:
                repo.finish_run(conn, run_id, "succeeded")
            return Outcome(Action.CONTINUE, error=err)
        repo.finish_run(conn, run_id, "failed", err.for_step(step_id).as_dict())
    return Outcome(Action.FAILED, error=err)


def sleep_for_retry(countdown: float) -> None:
    time.sleep(countdown)
