"""The continuation of a parked run: what runs after its ``sleep`` or ``wait`` node wakes, worked out
from the run's stored flow snapshot (the compiler publishes it; the wake-up decides whether there
is any)."""

from __future__ import annotations

from orchestration.flows.model import BranchNode, Flow, Node, SequenceNode, SleepNode, WaitNode


def continuation(flow: Flow, node_id: str, *, timed_out: bool = False) -> list[Node]:
    """What runs after the parking node ``node_id`` wakes: the nodes after it in its sequence, then
    after each enclosing sequence (a branch arm goes on after its branch); a timed-out wait's
    ``on_timeout`` step first. Parking nodes sit only in sequences and branch arms (validation)."""

    def rest(node: Node) -> list[Node] | None:
        if isinstance(node, SleepNode | WaitNode):
            if node.id != node_id:
                return None
            first = node.on_timeout if isinstance(node, WaitNode) and timed_out else None
            return [first] if first is not None else []
        if isinstance(node, SequenceNode):
            for i, child in enumerate(node.steps):
                found = rest(child)
                if found is not None:
                    return [*found, *node.steps[i + 1 :]]
        if isinstance(node, BranchNode):
            for arm in node.arms():
                found = rest(arm)
                if found is not None:
                    return found
        return None

    found = rest(flow.root)
    if found is None:
        raise KeyError(f"flow {flow.name!r} has no sleep or wait {node_id!r}")
    return found
