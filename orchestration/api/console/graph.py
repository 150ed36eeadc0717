"""A flow drawn as SVG on the server, each node coloured by its step's status in a run.

The layout follows the flow's own shape (sequences stack, parallel members, branch arms and a map's
lanes stand side by side), the same reading as ``campaignflow flows graph``: a parallel block is a
fork and a join, a branch a decision whose edges carry their conditions, a map a fan-out and a join,
a fallback hangs off its step by a dotted ``fails`` edge. No script draws it: the page is the same
without JavaScript, and a test reads the statuses from the markup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from markupsafe import Markup, escape

from orchestration.flows.graph import describe
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

NODE_W, NODE_H = 156, 42
GAP_X, GAP_Y = 22, 34
PAD = 16

#: A step's status in the run drawn (``None``: no record).
StatusOf = Callable[[str], str | None]

Point = tuple[float, float]


@dataclass
class Box:
    x: float
    y: float
    w: float
    h: float
    shape: str  # step, fork, join, decision, map, terminal
    label: str
    sub: str = ""
    status: str | None = None
    step_id: str | None = None


@dataclass
class Edge:
    points: list[Point]
    dashed: bool = False
    label: str = ""


@dataclass
class Block:
    """A laid-out node in its own coordinates: where edges enter it and leave it."""

    w: float
    h: float
    entry: Point
    exits: list[Point]
    boxes: list[Box] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)

    def moved(self, dx: float, dy: float) -> Block:
        def at(p: Point) -> Point:
            return (p[0] + dx, p[1] + dy)

        return Block(
            self.w,
            self.h,
            at(self.entry),
            [at(p) for p in self.exits],
            [
                Box(b.x + dx, b.y + dy, b.w, b.h, b.shape, b.label, b.sub, b.status, b.step_id)
                for b in self.boxes
            ],
            [Edge([at(p) for p in e.points], e.dashed, e.label) for e in self.edges],
        )


def _connect(start: Point, end: Point, *, dashed: bool = False, label: str = "") -> Edge:
    if abs(start[0] - end[0]) < 0.5:
        return Edge([start, end], dashed, label)
    mid = end[1] - GAP_Y / 2
    return Edge([start, (start[0], mid), (end[0], mid), end], dashed, label)


def _single(box: Box) -> Block:
    return Block(box.w, box.h, (box.w / 2, 0), [(box.w / 2, box.h)], [box])


class _Layout:
    def __init__(self, status_of: StatusOf) -> None:
        self.status_of = status_of

    def node(self, node: Node) -> Block:
        if isinstance(node, StepNode):
            return self.step(node)
        if isinstance(node, SequenceNode):
            return self.stack([self.node(child) for child in node.steps])
        if isinstance(node, ParallelNode):
            fork = Box(0, 0, NODE_W, NODE_H, "fork", f"parallel {node.id}")
            return self.fan(fork, [(self.node(m), "") for m in node.members], self.join(node.id))
        if isinstance(node, BranchNode):
            decision = Box(
                0, 0, NODE_W, NODE_H, "decision", node.id, "branch", self.status_of(node.id), node.id
            )
            arms = [(self.node(case.then), describe(case.when)) for case in node.cases]
            if node.else_ is not None:
                arms.append((self.node(node.else_), "else"))
            else:
                arms.append((Block(60, 0, (30, 0), [(30, 0)]), "else"))
            return self.fan(decision, arms, None)
        if isinstance(node, SleepNode | WaitNode):
            return self.park(node)
        assert isinstance(node, MapNode)
        fan = Box(
            0, 0, NODE_W, NODE_H, "map", f"map {node.id}", f"over {node.over}, {node.concurrency} at once"
        )
        return self.fan(fan, [(self.node(node.do), "each item")], self.join(node.id))

    def join(self, node_id: str) -> Box:
        return Box(
            0, 0, NODE_W * 0.7, NODE_H, "join", f"join {node_id}", "", self.status_of(node_id), node_id
        )

    def park(self, node: SleepNode | WaitNode) -> Block:
        """A sleep or a wait: one box; a wait's ``on_timeout`` step hangs off it like a fallback."""
        if isinstance(node, WaitNode):
            sub = f"wait for {node.signal}" + (f", {node.timeout} at most" if node.timeout else "")
        elif node.for_ is not None:
            sub = f"sleep {node.for_}"
        else:
            sub = f"sleep until {node.until}" if node.until is not None else "sleep into its window"
        box = Box(0, 0, NODE_W, NODE_H, "step", node.id, sub, self.status_of(node.id), node.id)
        if not isinstance(node, WaitNode) or node.on_timeout is None:
            return _single(box)
        return self.aside(box, self.step(node.on_timeout), "timeout")

    def step(self, node: StepNode) -> Block:
        box = Box(0, 0, NODE_W, NODE_H, "step", node.id, node.agent, self.status_of(node.id), node.id)
        if node.fallback is None:
            return _single(box)
        return self.aside(box, self.step(node.fallback), "fails")

    def aside(self, box: Box, other: Block, label: str) -> Block:
        """``box`` with ``other`` below and to its right, reached by a dashed ``label`` edge; what
        follows the box follows ``other`` too."""
        fallback = other.moved(NODE_W + GAP_X, NODE_H + GAP_Y)
        edge = Edge(
            [(NODE_W, NODE_H / 2), (fallback.entry[0], NODE_H / 2), fallback.entry],
            dashed=True,
            label=label,
        )
        return Block(
            fallback.w + NODE_W + GAP_X,
            NODE_H + GAP_Y + fallback.h,
            (NODE_W / 2, 0),
            [(NODE_W / 2, NODE_H), *fallback.exits],
            [box, *fallback.boxes],
            [*fallback.edges, edge],
        )

    def stack(self, blocks: list[Block]) -> Block:
        width = max(b.w for b in blocks)
        y, placed = 0.0, []
        for block in blocks:
            placed.append(block.moved((width - block.w) / 2, y))
            y += block.h + GAP_Y
        out = Block(width, y - GAP_Y, placed[0].entry, placed[-1].exits)
        for i, block in enumerate(placed):
            out.boxes += block.boxes
            out.edges += block.edges
            if i:
                out.edges += [_connect(exit_, block.entry) for exit_ in placed[i - 1].exits]
        return out

    def fan(self, head: Box, arms: list[tuple[Block, str]], tail: Box | None) -> Block:
        """``head``, the ``arms`` side by side below it, then ``tail`` (or the arms' own exits)."""
        row_w = sum(a.w for a, _ in arms) + GAP_X * (len(arms) - 1)
        width = max(row_w, head.w, tail.w if tail else 0)
        top = NODE_H + GAP_Y
        x = (width - row_w) / 2
        head_block = _single(head).moved((width - head.w) / 2, 0)
        out = Block(width, 0, head_block.entry, [], list(head_block.boxes), [])
        exits: list[Point] = []
        for arm, label in arms:
            moved = arm.moved(x, top)
            out.boxes += moved.boxes
            out.edges += [*moved.edges, _connect(head_block.exits[0], moved.entry, label=label)]
            exits += moved.exits
            x += arm.w + GAP_X
        bottom = top + max(a.h for a, _ in arms)
        if tail is None:
            out.h, out.exits = bottom, exits
            return out
        tail_block = _single(tail).moved((width - tail.w) / 2, bottom + GAP_Y)
        out.boxes += tail_block.boxes
        out.edges += [_connect(e, tail_block.entry) for e in exits]
        out.h, out.exits = bottom + GAP_Y + tail.h, tail_block.exits
        return out


def layout(flow: Flow, status_of: StatusOf, end_status: str | None = None) -> Block:
    """The whole flow between a start and an end terminal."""
    drawing = _Layout(status_of)
    body = drawing.node(flow.root)
    start = Box(0, 0, NODE_W, NODE_H * 0.8, "terminal", f"{flow.name} v{flow.version}")
    end = Box(0, 0, NODE_W * 0.6, NODE_H * 0.8, "terminal", "end", "", end_status)
    return drawing.stack([_single(start), body, _single(end)])


def _clip(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _box_svg(box: Box, link: Callable[[str], str] | None) -> str:
    status = box.status or "none"
    title = f"{box.label} ({box.sub})" if box.sub else box.label
    if box.status:
        title += f": {box.status}"
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    if box.shape == "decision":
        shape = f'<polygon points="{cx},{box.y} {box.x + box.w},{cy} {cx},{box.y + box.h} {box.x},{cy}"/>'
    else:
        radius = {"step": 6, "join": box.h / 2, "terminal": box.h / 2, "fork": 2, "map": 2}.get(box.shape, 4)
        shape = f'<rect x="{box.x}" y="{box.y}" width="{box.w}" height="{box.h}" rx="{radius}"/>'
    label_y = cy - 4 if box.sub else cy + 4
    text = f'<text x="{cx}" y="{label_y}" class="label">{escape(_clip(box.label, 22))}</text>'
    if box.sub:
        text += f'<text x="{cx}" y="{cy + 12}" class="sub">{escape(_clip(box.sub, 26))}</text>'
    attrs = f'class="node {box.shape} status-{status}"'
    if box.step_id:
        attrs += f' data-step="{escape(box.step_id)}" data-status="{status}"'
    inner = f"<title>{escape(title)}</title>{shape}{text}"
    if link and box.step_id:
        inner = f'<a href="{escape(link(box.step_id))}">{inner}</a>'
    return f"<g {attrs}>{inner}</g>"


def _edge_svg(edge: Edge) -> str:
    points = " ".join(f"{x},{y}" for x, y in edge.points)
    cls = "edge dashed" if edge.dashed else "edge"
    out = f'<polyline class="{cls}" points="{points}" marker-end="url(#arrow)"/>'
    if edge.label:
        (x0, y0), (x1, y1) = edge.points[-2], edge.points[-1]
        lx, ly = (x0 + x1) / 2, (y0 + y1) / 2
        if len(edge.points) > 2:  # a bent edge: the label on its last, vertical leg
            lx, ly = x1 + 4, y0 + (y1 - y0) / 2 + 4
        elif edge.dashed:
            lx, ly = edge.points[1][0] - 34, edge.points[0][1] - 4
        out += f'<text x="{lx}" y="{ly}" class="edge-label">{escape(_clip(edge.label, 30))}</text>'
        out = f"<g><title>{escape(edge.label)}</title>{out}</g>"
    return out


def svg(block: Block, link: Callable[[str], str] | None = None) -> Markup:
    """The drawing as inline SVG (``link``: where a step's node points, e.g. its row on the page)."""
    width, height = block.w + 2 * PAD, block.h + 2 * PAD
    moved = block.moved(PAD, PAD)
    parts = [
        f'<svg class="flow-graph" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        'aria-label="flow graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/></marker></defs>',
        *(_edge_svg(e) for e in moved.edges),
        *(_box_svg(b, link) for b in moved.boxes),
        "</svg>",
    ]
    return Markup("".join(parts))


def flow_svg(
    flow: Flow,
    status_of: StatusOf = lambda _: None,
    end_status: str | None = None,
    link: Callable[[str], str] | None = None,
) -> Markup:
    return svg(layout(flow, status_of, end_status), link)
