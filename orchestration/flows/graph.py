"""A flow as a Mermaid flowchart (``campaignflow flows graph NAME``).

A step's fallback hangs off it by a dotted ``fails`` edge, and what follows the step follows its
fallback too (the fallback stands in for it). A sleep or a wait is a flag shape (``>...]``); a
wait's way on is labelled with its signal, and its ``on_timeout`` step hangs off a ``timeout`` edge."""

from __future__ import annotations

from orchestration.flows.conditions import AllOf, AnyOf, Compare, Not
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

#: The edge from a step to its fallback: dotted, labelled.
FALLBACK_EDGE = "-.->|fails|"


def describe(cond: object) -> str:
    if isinstance(cond, Compare):
        return f"{cond.field} {cond.op} {cond.value!r}" if cond.op != "exists" else f"{cond.field} exists"
    if isinstance(cond, AllOf):
        return " and ".join(describe(c) for c in cond.all)
    if isinstance(cond, AnyOf):
        return " or ".join(describe(c) for c in cond.any)
    if isinstance(cond, Not):
        return f"not ({describe(cond.not_)})"
    return "?"


class _Mermaid:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.counter = 0

    def _anon(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def node(self, node: Node, entry: list[str]) -> list[str]:
        """Draw ``node`` after the ``entry`` nodes; return the ids the next node connects from."""
        if isinstance(node, StepNode):
            step = _safe(node.id)
            self.lines.append(f'    {step}["{node.id}<br/><i>{node.agent}</i>"]')
            self._edges(entry, step)
            if node.fallback is None:
                return [step]
            return [step, *self.node(node.fallback, [f"{step} {FALLBACK_EDGE}"])]
        if isinstance(node, SequenceNode):
            for child in node.steps:
                entry = self.node(child, entry)
            return entry
        if isinstance(node, ParallelNode):
            fork = self._anon("fork")
            self.lines.append(f"    {fork}{{{{parallel {node.id}}}}}")
            self._edges(entry, fork)
            member_ends = [end for m in node.members for end in self.node(m, [fork])]
            join = _safe(node.id)
            self.lines.append(f"    {join}((join {node.id}))")
            self._edges(member_ends, join)
            return [join]
        if isinstance(node, BranchNode):
            decision = _safe(node.id)
            self.lines.append(f"    {decision}{{{node.id}}}")
            self._edges(entry, decision)
            ends: list[str] = []
            for case in node.cases:
                ends += self.node(case.then, [f'{decision} -- "{_label(describe(case.when))}"'])
            if node.else_ is not None:
                ends += self.node(node.else_, [f'{decision} -- "else"'])
            else:
                ends.append(decision)
            return ends
        if isinstance(node, SleepNode | WaitNode):
            return self._park(node, entry)
        assert isinstance(node, MapNode)
        fan = self._anon("map")
        self.lines.append(
            f'    {fan}[/"map {node.id} over {node.over}<br/>at most {node.concurrency} at once"/]'
        )
        self._edges(entry, fan)
        join = _safe(node.id)
        map_ends = self.node(node.do, [fan])
        self.lines.append(f"    {join}((join {node.id}))")
        self._edges(map_ends, join)
        return [join]

    def _park(self, node: SleepNode | WaitNode, entry: list[str]) -> list[str]:
        park = _safe(node.id)
        if isinstance(node, SleepNode):
            if node.window is not None:
                w = node.window
                what = f"{w.start}-{w.end} {','.join(w.days)} in {w.timezone}"
            else:
                what = f"for {node.for_}" if node.for_ is not None else f"until {node.until}"
            self.lines.append(f'    {park}>"sleep {node.id}<br/>{_label(what)}"]')
            self._edges(entry, park)
            return [park]
        self.lines.append(f'    {park}>"wait {node.id}<br/>for signal {node.signal}"]')
        self._edges(entry, park)
        if node.timeout is None:
            return [park]
        ends = [f'{park} -- "{node.signal}"']
        if node.on_timeout is None:
            timed_out = f"{park}_timeout"
            self.lines.append(f"    {timed_out}([fails: timeout {node.timeout}])")
            self._edges([f'{park} -- "timeout"'], timed_out)
            return ends
        return ends + self.node(node.on_timeout, [f'{park} -- "timeout {node.timeout}"'])

    def _edges(self, sources: list[str], target: str) -> None:
        """An edge from each source: a node id, a labelled ``id -- "label"`` (drawn ``-->``), or one
        that ends in its own arrow (the fallback's)."""
        self.lines.extend(
            f"    {source} {target}" if source.endswith(FALLBACK_EDGE) else f"    {source} --> {target}"
            for source in sources
        )


def _safe(node_id: str) -> str:
    return "n_" + node_id.replace("-", "_")


def _label(text: str) -> str:
    return text.replace('"', "'")


def to_mermaid(flow: Flow) -> str:
    drawing = _Mermaid()
    drawing.lines.append(f"    start([{flow.name} v{flow.version}])")
    ends = drawing.node(flow.root, ["start"])
    drawing.lines.append("    done([end])")
    drawing._edges(ends, "done")
    return "flowchart TD\n" + "\n".join(drawing.lines) + "\n"
