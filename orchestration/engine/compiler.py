"""The OrchestrationEngine: compiles a flow into a native Celery canvas and runs it on the workers,
or runs the same steps in the caller's process. Both leave the same envelope.

Only shapes that Celery runs reliably are emitted: a chain of immutable ``.si`` steps; a parallel
block as ``chord(group(members), join)`` whose members are single tasks or flat chains; branches and
maps as tasks that replace themselves at run time. A parallel member that fans out itself (a nested
parallel or map) is not put inside the group: it runs as its own stage before the group, which keeps
the join's meaning (everything done before the join) and never nests a chord in a chord header.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, chain, chord, group
from celery.canvas import Signature

from orchestration.engine import logs, steps
from orchestration.flows.model import BranchNode, Flow, MapNode, Node, ParallelNode, SequenceNode, StepNode
from orchestration.registry import Registry

JOIN_TASK = "campaignflow.engine.join"
BRANCH_TASK = "campaignflow.engine.branch"
MAP_TASK = "campaignflow.engine.map"
FAIL_TASK = "campaignflow.engine.fail_run"


def is_flat(node: Node) -> bool:
    """True when the node compiles to a plain chain of tasks (fit to be a chord header member)."""
    if isinstance(node, StepNode):
        return True
    if isinstance(node, SequenceNode):
        return all(is_flat(child) for child in node.steps)
    if isinstance(node, BranchNode):
        return all(is_flat(arm) for arm in node.arms())
    return False


def _result_options(in_header: bool) -> dict[str, Any]:
    """Celery results are stored only where a chord needs them; elsewhere storing and subscribing
    to them is work nobody reads (the envelope holds every step's outcome)."""
    return {} if in_header else {"ignore_result": True}


def _chain_of(parts: list[Signature]) -> Signature:
    return parts[0] if len(parts) == 1 else chain(*parts)


class OrchestrationEngine:
    def __init__(self, app: Celery, registry: Registry) -> None:
        self.app = app
        self.registry = registry

    # compiling
    def compile(self, flow: Flow, run_id: str) -> Signature:
        """The whole flow as one canvas, with the run-failure errback linked everywhere."""
        canvas = _chain_of(self.compile_node(flow.root, run_id, final=True))
        canvas.link_error(self.app.signature(FAIL_TASK, kwargs={"run_id": run_id}))
        return canvas

    def compile_node(
        self, node: Node, run_id: str, *, final: bool, in_header: bool = False
    ) -> list[Signature]:
        """The chain segment of one node; ``final`` marks the segment that ends the run.

        Data flows through the envelope, so no step needs Celery to store its result, except the
        members of a chord header (``in_header``), whose results the chord joins.
        """
        if isinstance(node, StepNode):
            return [self.step_signature(node, run_id, node.id, final=final, in_header=in_header)]
        if isinstance(node, SequenceNode):
            last = len(node.steps) - 1
            return [
                sig
                for i, child in enumerate(node.steps)
                for sig in self.compile_node(child, run_id, final=final and i == last, in_header=in_header)
            ]
        if isinstance(node, ParallelNode):
            return self._parallel(node, run_id, final=final)
        if isinstance(node, BranchNode):
            return [self._engine_sig(BRANCH_TASK, run_id, node.id, final, in_header)]
        return [self._engine_sig(MAP_TASK, run_id, node.id, final, in_header)]

    def _parallel(self, node: ParallelNode, run_id: str, *, final: bool) -> list[Signature]:
        flat = [m for m in node.members if is_flat(m)]
        stages = [
            sig for m in node.members if not is_flat(m) for sig in self.compile_node(m, run_id, final=False)
        ]
        join = self._engine_sig(JOIN_TASK, run_id, node.id, final)
        if not flat:
            return [*stages, join]
        members = [_chain_of(self.compile_node(m, run_id, final=False, in_header=True)) for m in flat]
        return [*stages, chord(group(members), join)]

    def map_canvas(self, node: MapNode, run_id: str, count: int, *, final: bool) -> Signature:
        """At run time: ``count`` items in at most ``concurrency`` lanes, each lane a flat chain."""
        join = self._engine_sig(JOIN_TASK, run_id, node.id, final)
        if count == 0:
            return join
        lanes: list[list[Signature]] = [[] for _ in range(min(node.concurrency, count))]
        inner = (
            [node.do]
            if isinstance(node.do, StepNode)
            else [s for s in node.do.steps if isinstance(s, StepNode)]
        )
        for i in range(count):
            for step, sid in zip(inner, steps.map_item_ids(node, i), strict=True):
                lane = lanes[i % len(lanes)]
                lane.append(self.step_signature(step, run_id, sid, final=False, in_header=True))
        return chord(group([_chain_of(lane) for lane in lanes]), join)

    def step_signature(
        self, node: StepNode, run_id: str, step_id: str, *, final: bool, in_header: bool = False
    ) -> Signature:
        spec = self.registry.agent(node.agent)
        kwargs: dict[str, Any] = {"run_id": run_id, "step_id": step_id}
        if final:
            kwargs["final"] = True
        options = _result_options(in_header)
        if node.soft_time_limit is not None:
            options["soft_time_limit"] = node.soft_time_limit
        if node.time_limit is not None:
            options["time_limit"] = node.time_limit
        return self.app.signature(spec.task_name, kwargs=kwargs, immutable=True, **options)

    def _engine_sig(
        self, name: str, run_id: str, node_id: str, final: bool, in_header: bool = False
    ) -> Signature:
        kwargs: dict[str, Any] = {"run_id": run_id, "node_id": node_id}
        if final:
            kwargs["final"] = True
        return self.app.signature(name, kwargs=kwargs, immutable=True, **_result_options(in_header))

    # running
    def start(self, flow: Flow, run_id: str) -> None:
        """Publish the compiled canvas; the workers take it from there."""
        self.compile(flow, run_id).apply_async()

    def run_inline(self, flow: Flow, run_id: str) -> None:
        """Run every step in this process, in order, with the same records as on the workers."""
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
            return steps.join(run_id, node.id, final=final).action is steps.Action.CONTINUE
        if isinstance(node, BranchNode):
            return self._inline_branch(node, run_id, final=final)
        return self._inline_map(node, run_id, final=final)

    def _inline_branch(self, node: BranchNode, run_id: str, *, final: bool) -> bool:
        outcome, taken = steps.choose_branch(run_id, node.id)
        if outcome.action is not steps.Action.CONTINUE:
            return False
        if taken is None:
            if final:
                steps.finalize(run_id)
            return True
        return self._inline(taken, run_id, final=final)

    def _inline_map(self, node: MapNode, run_id: str, *, final: bool) -> bool:
        outcome, map_node, count = steps.expand_map(run_id, node.id)
        if outcome.action is not steps.Action.CONTINUE:
            return False
        inner = [map_node.do] if isinstance(map_node.do, StepNode) else map_node.do.steps
        for i in range(count):
            for step, sid in zip(inner, steps.map_item_ids(map_node, i), strict=True):
                assert isinstance(step, StepNode)
                if not self._inline_step(step, run_id, sid, final=False):
                    return False
        return steps.join(run_id, node.id, final=final).action is steps.Action.CONTINUE

    def _inline_step(self, node: StepNode, run_id: str, step_id: str, *, final: bool) -> bool:
        token = logs.bind(logs.StepFields(run_id, step_id, node.agent, None))
        try:
            return self._inline_tries(node, run_id, step_id, final=final)
        finally:
            logs.unbind(token)

    def _inline_tries(self, node: StepNode, run_id: str, step_id: str, *, final: bool) -> bool:
        while True:
            outcome = steps.run_agent_step(run_id, step_id, agent=node.agent, final=final)
            if outcome.action is steps.Action.RETRY:
                steps.sleep_for_retry(outcome.countdown)
                continue
            if outcome.action is steps.Action.FALLBACK:
                assert outcome.fallback is not None
                return self._inline_step(outcome.fallback, run_id, outcome.fallback.id, final=final)
            return outcome.action is steps.Action.CONTINUE
