"""The engine tasks of durable time, on the ``orchestration`` queue: the park task a ``sleep`` or
``wait`` node compiles to, and the timer poller (beat)."""

from __future__ import annotations

from typing import Any

from celery import Task
from celery.exceptions import Ignore

from orchestration.engine import nodes, timers, waits
from orchestration.engine.outcome import Action
from orchestration.names import PARK_TASK, TIMERS_TASK
from orchestration.runtime import Runtime
from tasks.agent_tasks import apply_outcome
from tasks.engine_tasks import give_up_node, go_on
from tasks.outage import give_up_raising, waits_out_store_outages


def bind(runtime: Runtime) -> list[str]:
    """Bind the park task and the timer poller to the runtime's app."""
    app = runtime.app

    @app.task(name=PARK_TASK, bind=True, acks_late=True)
    @waits_out_store_outages(give_up_node)
    def park(
        self: Task,
        run_id: str,
        node_id: str,
        final: bool = False,
        deadline: str | None = None,
        start: dict[str, Any] | None = None,
    ) -> Any:
        """Park the run at a sleep or wait node and stop the chain (its wake-up publishes the
        rest); go on at once when the wait's signal is already there."""
        go_on(run_id, start)
        outcome = waits.park(run_id, node_id)
        if outcome.action is Action.PARK:
            raise Ignore()
        if outcome.action is Action.CONTINUE and final:
            nodes.finalize(run_id)
        return apply_outcome(runtime, self, outcome, run_id, node_id, final=final)

    @app.task(name=TIMERS_TASK, bind=True, acks_late=True, ignore_result=True)
    @waits_out_store_outages(give_up_raising)
    def fire_timers(self: Task) -> dict[str, Any]:
        """Periodic (beat): fire the due timers; harmless to run twice at once."""
        return timers.fire_due(runtime.engine).as_dict()

    return [park.name, fire_timers.name]
