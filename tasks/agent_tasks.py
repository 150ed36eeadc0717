"""One Celery task per registered agent: ``campaignflow.agent.<name>``, routed to ``agents.<pool>``."""

from __future__ import annotations

from typing import Any

from celery import Task
from celery.exceptions import Ignore

from orchestration.engine import agent_step
from orchestration.engine.outcome import Action, Outcome
from orchestration.errors import StepFailedError
from orchestration.registry import AgentSpec
from orchestration.runtime import Runtime
from orchestration.store.db import STORE_ERRORS
from tasks.requests import AgentRequest

#: Celery's own bound on publishing a task again after its pool child died. The step's retry policy
#: decides first (each lost try counts against it, :mod:`orchestration.engine.tries`); this only
#: stops a message whose try dies before it can count itself.
WORKER_LOST_RETRIES = 200


def apply_outcome(
    runtime: Runtime,
    task: Task,
    outcome: Outcome,
    run_id: str,
    step_id: str,
    *,
    final: bool,
    deadline: str | None = None,
) -> Any:
    """Turn a step's outcome into what Celery understands: a value, Ignore, retry, replace or error."""
    if outcome.action is Action.CONTINUE:
        return None
    if outcome.action is Action.STOP:
        raise Ignore()
    if outcome.action is Action.RETRY:
        limit = (task.max_retries or 0) + 1000
        kwargs = {k: v for k, v in (task.request.kwargs or {}).items() if k != "lost"}
        raise task.retry(kwargs=kwargs, countdown=outcome.countdown, max_retries=limit)
    if outcome.action is Action.FALLBACK:
        assert outcome.fallback is not None
        fallback = runtime.engine.step_signature(
            outcome.fallback,
            run_id,
            outcome.fallback.id,
            final=final,
            in_header=bool(task.request.chord),
            deadline=deadline,
        )
        return task.replace(fallback)
    message = outcome.error.message if outcome.error is not None else "step failed"
    raise StepFailedError(f"{step_id}: {message}")


def bind_agent(runtime: Runtime, spec: AgentSpec) -> Task:
    """Create (once) the Celery task of one agent, with its limits from the spec."""
    app = runtime.app
    if spec.task_name in app.tasks:
        return app.tasks[spec.task_name]

    def run(
        self: Task,
        run_id: str,
        step_id: str,
        final: bool = False,
        deadline: str | None = None,
        lost: str | None = None,
    ) -> Any:
        # a redelivered message (its worker went away) is not the retry that ``lost`` describes
        seen = None if (self.request.delivery_info or {}).get("redelivered") else lost
        outcome = agent_step.run_agent_step(
            run_id, step_id, spec=spec, final=final, lost=seen, task_id=self.request.id
        )
        return apply_outcome(runtime, self, outcome, run_id, step_id, final=final, deadline=deadline)

    run.__name__ = f"agent_{spec.name}"
    run.__doc__ = spec.description or f"Run agent {spec.name}."
    task: Task = app.task(
        name=spec.task_name,
        bind=True,
        acks_late=True,
        soft_time_limit=spec.soft_time_limit,
        time_limit=spec.time_limit,
        rate_limit=spec.rate_limit,
        max_retries=WORKER_LOST_RETRIES,
        default_retry_delay=1,
        # the run store went away (a restart, a failover): the pool drops the broken connection,
        # the step is tried again; its record makes the retry safe
        autoretry_for=STORE_ERRORS,
        Request=AgentRequest,  # time limits capped by the run's deadline; lost tries say why
        retry_backoff=1,
        retry_backoff_max=30,
    )(run)
    return task


def bind(runtime: Runtime) -> list[str]:
    """Bind a task for every agent of the registry."""
    return [bind_agent(runtime, spec).name for spec in runtime.registry.agents()]
