"""One Celery task per registered agent: ``campaignflow.agent.<name>``, routed to ``agents.<pool>``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import redis
from celery import Task
from celery.exceptions import Ignore

from orchestration.engine import agent_step, permits, priority, step_metrics
from orchestration.engine.outcome import Action, Outcome
from orchestration.engine.progress import StepProgress
from orchestration.engine.unavailable import fail_unavailable
from orchestration.errors import StepFailedError, StoreUnavailable
from orchestration.registry import AgentSpec
from orchestration.runtime import Runtime
from orchestration.step_error import StepError
from orchestration.timefmt import as_utc
from tasks.outage import OUTAGE_KWARG, waits_out_store_outages
from tasks.requests import AgentRequest

log = logging.getLogger(__name__)

#: Keywords of a step's message that describe one delivery, not the step: a new try goes without them.
DELIVERY_KWARGS = frozenset({"lost", "progress", OUTAGE_KWARG, permits.THROTTLE_KWARG})

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
    if outcome.action in (Action.STOP, Action.PARK):
        raise Ignore()
    if outcome.action is Action.RETRY:
        limit = (task.max_retries or 0) + 1000
        kwargs = {k: v for k, v in (task.request.kwargs or {}).items() if k not in DELIVERY_KWARGS}
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


def give_up_step(
    task: Task, error: StoreUnavailable, run_id: str, step_id: str, *_: Any, **kwargs: Any
) -> Any:
    """The store stayed away past the budget: the run fails with ``StoreUnavailable``, keeping the
    agent's output when it had one (:func:`tasks.outage.waits_out_store_outages`)."""
    progress = kwargs.get("progress")
    outcome = StepProgress(progress if isinstance(progress, dict) else None).outcome
    fail_unavailable(run_id, step_id, StepError.from_exception(error), outcome=outcome)
    raise StepFailedError(f"{step_id}: {error}")


def _admit(
    task: Task,
    spec: AgentSpec,
    run_id: str,
    step_id: str,
    limits: dict[str, Any] | None,
    throttle: dict[str, Any] | None,
    deadline: str | None,
) -> permits.StepGate | None:
    """Pass the step's cluster-wide limits (``orchestration.engine.permits``): a permit, or the
    message goes back with a countdown, holding no worker and counting no try (raises Retry). A
    step past its run's deadline asks for none: it goes on to fail the run."""
    decl = permits.declared(spec, limits)
    if not decl.limited or (deadline and as_utc(deadline) < datetime.now(UTC)):
        return None
    priority = run_priority(task)
    gate = permits.StepGate(spec, run_id, step_id, decl, priority, permits.Throttle.read(throttle))
    try:
        decision = gate.admit()
    except redis.RedisError as exc:  # the limits cannot be asked: wait, as for a permit
        log.warning("%s of run %s: cluster-wide limits unavailable (%s); put back", step_id, run_id, exc)
        decision = permits.Decision(False, 1.0, 0, 0)
        gate.decision = decision
    if decision is None:
        return None
    if decision.granted:
        return gate
    countdown = gate.countdown()
    step_metrics.record_throttle(spec.name)
    kwargs = {k: v for k, v in (task.request.kwargs or {}).items() if k != OUTAGE_KWARG}
    raise task.retry(
        kwargs={**kwargs, permits.THROTTLE_KWARG: gate.carry()},
        countdown=countdown,
        max_retries=(task.request.retries or 0) + 1,  # waiting for a permit is no try
        exc=permits.Throttled(f"{step_id}: waiting {countdown:.2f}s for a permit of {spec.name}"),
    )


def run_priority(task: Task) -> int:
    """The run's priority (0-9, higher first), as its message carries it (Redis: 9 - priority)."""
    return priority.from_message((task.request.delivery_info or {}).get("priority"))


def bind_agent(runtime: Runtime, spec: AgentSpec) -> Task:
    """Create (once) the Celery task of one agent, with its limits from the spec."""
    app = runtime.app
    if spec.task_name in app.tasks:
        return app.tasks[spec.task_name]

    @waits_out_store_outages(give_up_step, carry=("progress",))
    def run(
        self: Task,
        run_id: str,
        step_id: str,
        final: bool = False,
        deadline: str | None = None,
        lost: str | None = None,
        progress: dict[str, Any] | None = None,
        start: dict[str, Any] | None = None,
        limits: dict[str, Any] | None = None,
        throttle: dict[str, Any] | None = None,
    ) -> Any:
        # a redelivered message (its worker went away) is not the retry that ``lost`` describes
        redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
        seen = None if redelivered else lost
        step = StepProgress(progress)
        if redelivered:  # its last delivery may have died inside the agent
            step.forget_try()
        if step.outcome is not None:
            log.info(
                "%s of run %s: the outcome kept while the run store was away is written now", step_id, run_id
            )
        gate = None
        if step.start() is None:  # a try an earlier delivery began was admitted then
            gate = _admit(self, spec, run_id, step_id, limits, throttle, deadline)
        try:
            outcome = agent_step.run_agent_step(
                run_id,
                step_id,
                spec=spec,
                final=final,
                lost=seen,
                progress=step,
                task_id=self.request.id,
                publication=start,
            )
        finally:
            if gate is not None:
                gate.done()
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
        Request=AgentRequest,  # time limits capped by the run's deadline; lost tries say why
    )(run)
    return task


def bind(runtime: Runtime) -> list[str]:
    """Bind a task for every agent of the registry."""
    return [bind_agent(runtime, spec).name for spec in runtime.registry.agents()]
