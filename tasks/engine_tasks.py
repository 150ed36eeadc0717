"""The engine's own steps, on the ``orchestration`` queue: join, branch, map, and the errback that
guarantees a terminal envelope when a task fails in a way its step could not record."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from celery.exceptions import TimeLimitExceeded

from orchestration.control.retention import apply_retention
from orchestration.control.sweeper import sweep as run_sweep
from orchestration.engine import nodes
from orchestration.engine.compiler import chain_of
from orchestration.engine.outcome import Action
from orchestration.engine.unavailable import fail_unavailable
from orchestration.errors import StepFailedError, StoreUnavailable
from orchestration.names import (
    BRANCH_TASK,
    FAIL_RUN_TASK,
    JOIN_TASK,
    LIVE_RUN_STATUSES,
    MAP_TASK,
    RETENTION_TASK,
    SWEEP_TASK,
)
from orchestration.runtime import Runtime
from orchestration.step_error import StepError
from orchestration.store import repository as repo
from orchestration.store import sql_engine
from tasks.agent_tasks import apply_outcome
from tasks.outage import give_up_raising, waits_out_store_outages


def bind(runtime: Runtime) -> list[str]:
    """Bind join, branch, map, the run-failure errback, the sweeper and retention to the runtime's app."""
    app = runtime.app

    @app.task(name=JOIN_TASK, bind=True, acks_late=True)
    @waits_out_store_outages(give_up_node)
    def join(self: Task, run_id: str, node_id: str, final: bool = False, deadline: str | None = None) -> Any:
        """The explicit join after a parallel block or a map."""
        outcome = nodes.join(run_id, node_id, final=final)
        return apply_outcome(runtime, self, outcome, run_id, node_id, final=final)

    @app.task(name=BRANCH_TASK, bind=True, acks_late=True)
    @waits_out_store_outages(give_up_node)
    def branch(
        self: Task, run_id: str, node_id: str, final: bool = False, deadline: str | None = None
    ) -> Any:
        """Evaluate the branch and replace this task with the chosen arm (the chain goes on after it)."""
        outcome, taken = nodes.choose_branch(run_id, node_id)
        if outcome.action is not Action.CONTINUE:
            return apply_outcome(runtime, self, outcome, run_id, node_id, final=final)
        if taken is None:
            if final:
                nodes.finalize(run_id)
            return None
        in_header = bool(self.request.chord)  # standing in for a chord member: keep the results
        arm = runtime.engine.compile_node(taken, run_id, final=final, in_header=in_header, deadline=deadline)
        return self.replace(chain_of(arm))

    @app.task(name=MAP_TASK, bind=True, acks_late=True)
    @waits_out_store_outages(give_up_node)
    def map_items(
        self: Task, run_id: str, node_id: str, final: bool = False, deadline: str | None = None
    ) -> Any:
        """Expand the map over its list and replace this task with the lanes and their join."""
        outcome, node, count = nodes.expand_map(run_id, node_id)
        if outcome.action is not Action.CONTINUE:
            return apply_outcome(runtime, self, outcome, run_id, node_id, final=final)
        return self.replace(runtime.engine.map_canvas(node, run_id, count, final=final, deadline=deadline))

    @app.task(name=FAIL_RUN_TASK, bind=True, acks_late=True)
    @waits_out_store_outages()  # no giving up: this is what records the failure, whenever it can
    def fail_run(self: Task, failed_task_id: str | None = None, *, run_id: str) -> None:
        """Errback linked to every task of a run: ends the run ``failed`` unless it is already terminal.

        Takes one positional argument (the failed task's id) and is bound, so Celery sends it as a
        task. A step that failed for good has already failed the run; this covers what a step cannot
        record itself: a killed worker after its retries, a hard time limit, an error outside the
        step's own code, a store that stayed away past the budget.
        """
        reason = failure_reason(app, failed_task_id)
        if reason is not None:  # None: the step recorded its failure and ended the run itself (the
            end_failed_run(run_id, reason)  # run may be retried by now: this must not fail it again)

    @app.task(name=SWEEP_TASK, bind=True, acks_late=True)
    @waits_out_store_outages(give_up_raising)
    def sweep(self: Task) -> dict[str, list[str]]:
        """Periodic (beat): fail runs past their deadline, re-drive or fail runs with no progress."""
        settings = runtime.settings
        report = run_sweep(
            runtime.engine, stall_seconds=settings.stall_seconds, max_redrives=settings.max_redrives
        )
        return report.as_dict()

    @app.task(name=RETENTION_TASK, bind=True, acks_late=True)
    @waits_out_store_outages(give_up_raising)
    def retention(self: Task) -> dict[str, Any]:
        """Periodic (beat): purge what the retention settings say is too old, in short batches, and
        fold the run counters. Harmless to run twice at once (batches skip each other's rows)."""
        return apply_retention(runtime.settings).as_dict()

    return [t.name for t in (join, branch, map_items, fail_run, sweep, retention)]


def give_up_node(task: Task, error: StoreUnavailable, run_id: str, node_id: str, *_: Any, **__: Any) -> Any:
    """Join, branch or map waited past the store outage budget: the run fails with ``StoreUnavailable``."""
    fail_unavailable(run_id, node_id, StepError.from_exception(error))
    raise StepFailedError(f"{node_id}: {error}")


def end_failed_run(run_id: str, reason: StepError) -> None:
    """End a live run ``failed``: with its first failed step's error, else ``reason`` (its
    unfinished records fail with it)."""
    with sql_engine().begin() as conn:
        if repo.run_status(conn, run_id) not in LIVE_RUN_STATUSES:
            return
        failed = repo.first_failed_step(conn, run_id)
        if failed is None:
            unfinished = repo.fail_unfinished_steps(conn, run_id, reason.as_dict())
            error = reason.for_step(unfinished[0] if unfinished else None)
        else:
            step_id, stored = failed
            error = (StepError.model_validate(stored) if stored else reason).for_step(step_id)
        repo.finish_run(conn, run_id, "failed", error.as_dict())


def failure_reason(app: Celery, task_id: str | None) -> StepError | None:
    """What the failed task's stored result says, as an error record; None when it is the error a
    step raises after recording its own failure (``StepFailedError``)."""
    if not task_id:
        return StepError.task_failed()
    result = app.AsyncResult(task_id)
    exc = result.result
    if isinstance(exc, StepFailedError):
        return None
    if isinstance(exc, TimeLimitExceeded):  # the hard limit killed the try
        limit = StepError.time_limit(exc.args[0] if exc.args else None)
        return StepError(type=limit.type, message=limit.message, task_id=task_id)
    return StepError.task_failed(task_id, exc if isinstance(exc, BaseException) else result.state)
