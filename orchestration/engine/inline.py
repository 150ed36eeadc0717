"""The inline runner: every step of a flow in the caller's process, in order, leaving the same
records as the workers would (``campaignflow demo --inline``, ``BaseOrchestrator.run(mode="inline")``).

Each agent call runs within the step's time limits, capped by the run's deadline, as on the workers
(:func:`orchestration.engine.limits.call_with_limits`)."""

from __future__ import annotations

from orchestration.engine import logs, waits
from orchestration.engine.agent_step import call_limited, run_agent_step, sleep_for_retry
from orchestration.engine.nodes import choose_branch, expand_map, finalize, join, map_item_ids
from orchestration.engine.outcome import Action
from orchestration.flows.model import (
    BranchNode,
    Flow,
    MapNode,
    Node,
    ParallelNode,
    SequenceNode,
    SleepNode,
    StepNode,
    WaitNode,
)
from orchestration.registry import Registry


class InlineRunner:
    """Runs a flow's nodes one after the other; agents are found in ``registry``."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def run(self, flow: Flow, run_id: str) -> None:
        self._inline(flow.root, run_id, final=True)

    def _inline(self, node: Node, run_id: str, *, final: bool) -> bool:
        if isinstance(node, StepNode):
            return self._inline_step(node, run_id, node.id, final=final)
        if isinstance(node, SequenceNode):
            last = len(node.steps) - 1
            return all(self._inline(c, run_id, final=final and i == last) for i, c in enumerate(node.steps))
        if isinstance(node, ParallelNode):
            if not all(self._inline(m, run_id, final=False) for m in node.members):
                return False
            return join(run_id, node.id, final=final).action is Action.CONTINUE
        if isinstance(node, BranchNode):
            return self._inline_branch(node, run_id, final=final)
        if isinstance(node, SleepNode | WaitNode):
            return self._inline_park(node, run_id, final=final)
        assert isinstance(node, MapNode)
        return self._inline_map(node, run_id, final=final)

    def _inline_branch(self, node: BranchNode, run_id: str, *, final: bool) -> bool:
        outcome, taken = choose_branch(run_id, node.id)
        if outcome.action is not Action.CONTINUE:
            return False
        if taken is None:
            if final:
                finalize(run_id)
            return True
        return self._inline(taken, run_id, final=final)

    def _inline_park(self, node: SleepNode | WaitNode, run_id: str, *, final: bool) -> bool:
        """The run parks here (the caller returns; the wake-up publishes the rest to the workers),
        or goes on at once when the wait's signal is already there."""
        outcome = waits.park(run_id, node.id)
        if outcome.action is not Action.CONTINUE:
            return False
        if final:
            finalize(run_id)
        return True

    def _inline_map(self, node: MapNode, run_id: str, *, final: bool) -> bool:
        outcome, map_node, count = expand_map(run_id, node.id)
        if outcome.action is not Action.CONTINUE:
            return False
        inner = [map_node.do] if isinstance(map_node.do, StepNode) else map_node.do.steps
        for i in range(count):
            for step, sid in zip(inner, map_item_ids(map_node, i), strict=True):
                assert isinstance(step, StepNode)
                if not self._inline_step(step, run_id, sid, final=False):
                    return False
        return join(run_id, node.id, final=final).action is Action.CONTINUE

    def _inline_step(self, node: StepNode, run_id: str, step_id: str, *, final: bool) -> bool:
        token = logs.bind(logs.StepFields(run_id, step_id, node.agent, None))
        try:
            return self._inline_tries(node, run_id, step_id, final=final)
        finally:
            logs.unbind(token)

    def _inline_tries(self, node: StepNode, run_id: str, step_id: str, *, final: bool) -> bool:
        while True:
            spec = self.registry.agent(node.agent)
            outcome = run_agent_step(run_id, step_id, spec=spec, final=final, call=call_limited)
            if outcome.action is Action.RETRY:
                sleep_for_retry(outcome.countdown)
                continue
            if outcome.action is Action.FALLBACK:
                assert outcome.fallback is not None
                return self._inline_step(outcome.fallback, run_id, outcome.fallback.id, final=final)
            return outcome.action is Action.CONTINUE
