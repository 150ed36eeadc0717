"""The OrchestrationEngine: compiles a flow into a native Celery canvas and runs it on the workers,
or runs the same steps in the caller's process. Both leave the same envelope.

A ``sleep`` or ``wait`` node compiles to the park task, which parks the run and stops the chain;
when the run wakes, :func:`continuation` (the rest of the flow after that node, from the run's
stored snapshot) is compiled and published in its place.

Only shapes that Celery runs reliably are emitted: a chain of immutable ``.si`` steps; a parallel
block as ``chord(group(members), join)`` whose members are single tasks or flat chains; branches and
maps as tasks that replace themselves at run time. A parallel member that fans out itself (a nested
parallel or map) is not put inside the group: it runs as its own stage before the group, which keeps
the join's meaning (everything done before the join) and never nests a chord in a chord header.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from celery import Celery, chain, chord, group
from celery.canvas import Signature

from orchestration.engine import starts
from orchestration.engine.continuation import continuation
from orchestration.engine.inline import InlineRunner
from orchestration.engine.nodes import map_item_ids
from orchestration.engine.permits import LIMITS_KWARG
from orchestration.engine.priority import to_message
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
from orchestration.names import BRANCH_TASK, FAIL_RUN_TASK, JOIN_TASK, MAP_TASK, PARK_TASK
from orchestration.registry import Registry
from orchestration.timefmt import iso_utc


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


def _task_kwargs(run_id: str, key: str, node_id: str, final: bool, deadline: str | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"run_id": run_id, key: node_id}
    if final:
        kwargs["final"] = True
    if deadline is not None:
        kwargs["deadline"] = deadline
    return kwargs


def chain_of(parts: list[Signature]) -> Signature:
    return parts[0] if len(parts) == 1 else chain(*parts)


class OrchestrationEngine:
    def __init__(self, app: Celery, registry: Registry) -> None:
        self.app = app
        self.registry = registry

    # compiling
    def compile(
        self,
        flow: Flow,
        run_id: str,
        deadline_at: datetime | None = None,
        *,
        publication: int | None = None,
        resume: str | None = None,
        timed_out: bool = False,
    ) -> Signature:
        """The whole flow as one canvas, with the run-failure errback linked everywhere.

        ``deadline_at`` (the run's) goes into every task's kwargs as ``deadline``: an agent task's
        time limits are capped by the time left when it starts, and the engine tasks hand it on to
        what they build at run time (branch arms, map lanes, fallbacks).

        With ``publication`` (the run's publication number, from the outbox) the tasks the canvas
        begins with get this publish's ``start`` (``orchestration.engine.starts``): only one copy of
        a publication goes on.

        With ``resume`` (a parking node's id) only the continuation after it is compiled (see
        :func:`continuation`; ``timed_out``: its wait timed out).
        """
        deadline = iso_utc(deadline_at) if deadline_at is not None else None
        root = flow.root
        if resume is not None:
            root = SequenceNode(steps=continuation(flow, resume, timed_out=timed_out))
        parts = self.compile_node(root, run_id, final=True, deadline=deadline)
        if publication is not None:
            starts.mark_entries(parts[0], starts.start_of(publication))
        canvas = chain_of(parts)
        canvas.link_error(self.app.signature(FAIL_RUN_TASK, kwargs={"run_id": run_id}))
        return canvas

    def compile_node(
        self, node: Node, run_id: str, *, final: bool, in_header: bool = False, deadline: str | None = None
    ) -> list[Signature]:
        """The chain segment of one node; ``final`` marks the segment that ends the run.

        Data flows through the envelope, so no step needs Celery to store its result, except the
        members of a chord header (``in_header``), whose results the chord joins.
        """
        if isinstance(node, StepNode):
            return [
                self.step_signature(
                    node, run_id, node.id, final=final, in_header=in_header, deadline=deadline
                )
            ]
        if isinstance(node, SequenceNode):
            last = len(node.steps) - 1
            return [
                sig
                for i, child in enumerate(node.steps)
                for sig in self.compile_node(
                    child, run_id, final=final and i == last, in_header=in_header, deadline=deadline
                )
            ]
        if isinstance(node, ParallelNode):
            return self._parallel(node, run_id, final=final, deadline=deadline)
        if isinstance(node, SleepNode | WaitNode):
            return [self._engine_sig(PARK_TASK, run_id, node.id, final, in_header, deadline)]
        name = BRANCH_TASK if isinstance(node, BranchNode) else MAP_TASK
        return [self._engine_sig(name, run_id, node.id, final, in_header, deadline)]

    def _parallel(
        self, node: ParallelNode, run_id: str, *, final: bool, deadline: str | None
    ) -> list[Signature]:
        flat = [m for m in node.members if is_flat(m)]
        stages = [
            sig
            for m in node.members
            if not is_flat(m)
            for sig in self.compile_node(m, run_id, final=False, deadline=deadline)
        ]
        join = self._engine_sig(JOIN_TASK, run_id, node.id, final, deadline=deadline)
        if not flat:
            return [*stages, join]
        members = [
            chain_of(self.compile_node(m, run_id, final=False, in_header=True, deadline=deadline))
            for m in flat
        ]
        return [*stages, chord(group(members), join)]

    def map_canvas(
        self, node: MapNode, run_id: str, count: int, *, final: bool, deadline: str | None = None
    ) -> Signature:
        """At run time: ``count`` items in at most ``concurrency`` lanes, each lane a flat chain."""
        join = self._engine_sig(JOIN_TASK, run_id, node.id, final, deadline=deadline)
        if count == 0:
            return join
        lanes: list[list[Signature]] = [[] for _ in range(min(node.concurrency, count))]
        inner = (
            [node.do]
            if isinstance(node.do, StepNode)
            else [s for s in node.do.steps if isinstance(s, StepNode)]
        )
        for i in range(count):
            for step, sid in zip(inner, map_item_ids(node, i), strict=True):
                lane = lanes[i % len(lanes)]
                lane.append(
                    self.step_signature(step, run_id, sid, final=False, in_header=True, deadline=deadline)
                )
        return chord(group([chain_of(lane) for lane in lanes]), join)

    def step_signature(
        self,
        node: StepNode,
        run_id: str,
        step_id: str,
        *,
        final: bool,
        in_header: bool = False,
        deadline: str | None = None,
    ) -> Signature:
        spec = self.registry.agent(node.agent)
        kwargs = _task_kwargs(run_id, "step_id", step_id, final, deadline)
        options = _result_options(in_header)
        if node.limits is not None:  # the flow's override of the agent's cluster-wide limits
            kwargs[LIMITS_KWARG] = node.limits.model_dump(exclude_none=True)
        if node.soft_time_limit is not None:
            options["soft_time_limit"] = node.soft_time_limit
        if node.time_limit is not None:
            options["time_limit"] = node.time_limit
        return self.app.signature(spec.task_name, kwargs=kwargs, immutable=True, **options)

    def _engine_sig(
        self,
        name: str,
        run_id: str,
        node_id: str,
        final: bool,
        in_header: bool = False,
        deadline: str | None = None,
    ) -> Signature:
        kwargs = _task_kwargs(run_id, "node_id", node_id, final, deadline)
        return self.app.signature(name, kwargs=kwargs, immutable=True, **_result_options(in_header))

    # running
    def start(
        self,
        flow: Flow,
        run_id: str,
        deadline_at: datetime | None = None,
        *,
        publication: int | None = None,
        retry_policy: dict[str, float] | None = None,
        priority: int = 0,
        resume: str | None = None,
        timed_out: bool = False,
    ) -> None:
        """Publish the compiled canvas (``deadline_at``: the run's; ``publication``, ``resume`` and
        ``timed_out``: see :meth:`compile`); the workers take it from there. ``priority``: the run's
        (0-9, higher first; ``orchestration.engine.priority``). ``retry_policy``: how long to keep
        trying an unreachable broker (Celery's ``retry_policy``; default: the app's)."""
        options: dict[str, Any] = {} if retry_policy is None else {"retry_policy": retry_policy}
        # every message of the run carries its priority; what its tasks send inherits it
        options["priority"] = to_message(priority)
        canvas = self.compile(
            flow, run_id, deadline_at, publication=publication, resume=resume, timed_out=timed_out
        )
        canvas.apply_async(**options)

    def run_inline(self, flow: Flow, run_id: str) -> None:
        """Run every step in this process, in order, with the same records as on the workers."""
        InlineRunner(self.registry).run(flow, run_id)
