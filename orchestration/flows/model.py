"""Flow definitions: a discriminated union of node kinds.

``step`` (one agent call), ``sequence``, ``parallel`` (members at once, then a join), ``branch``
(first matching case, else ``else``), ``map`` (one step or sub-sequence per item of a list, with a
concurrency cap, then a join), and the nodes of durable time: ``sleep`` (for a duration, until a
timestamp, or into a send window) and ``wait`` (for a named signal or a correlated event, with a
timeout). Nodes nest. A node dict without ``kind`` that has ``agent`` is a step.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from orchestration.flows.conditions import Condition
from orchestration.flows.limits import LimitDecl
from orchestration.flows.refs import RefSyntaxError, parse_path
from orchestration.flows.retry import RetryPolicy
from orchestration.flows.strict import StrictModel
from orchestration.flows.timing import DAYS, TimingError, parse_clock, parse_duration, parse_timestamp, zone

ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_\-]*$"
StepId = Annotated[str, Field(pattern=ID_PATTERN, max_length=80)]
OnError = Literal["fail", "continue"]
SignalName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.\-]*$", max_length=120)]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _ref(value: str) -> str:
    """A ``$reference`` whose path parses."""
    try:
        parse_path(value[1:])
    except RefSyntaxError as exc:
        raise ValueError(str(exc)) from None
    return value


def _duration(value: str) -> str:
    try:
        parse_duration(value)
    except TimingError as exc:
        raise ValueError(str(exc)) from None
    return value


class _Node(StrictModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class StepNode(_Node):
    kind: Literal["step"] = "step"
    id: StepId
    agent: str
    input: dict[str, Any] | None = Field(
        None, description="Agent input; values may be $references. Default: the whole payload."
    )
    retry: RetryPolicy | None = Field(None, description="Overrides the agent's retry policy.")
    soft_time_limit: float | None = Field(None, gt=0)
    time_limit: float | None = Field(None, gt=0)
    on_error: OnError = Field("fail", description="fail the run, or record the failure and continue.")
    limits: LimitDecl | None = Field(
        None, description="Overrides the agent's cluster-wide limits (global_concurrency, ...) for this step."
    )
    fallback: StepNode | None = Field(None, description="Step to run instead when this one fails for good.")

    def children(self) -> list[Node]:
        return []


class SequenceNode(_Node):
    kind: Literal["sequence"] = "sequence"
    id: StepId | None = None
    steps: list[Node] = Field(min_length=1)

    def children(self) -> list[Node]:
        return list(self.steps)


class ParallelNode(_Node):
    kind: Literal["parallel"] = "parallel"
    id: StepId = Field(description="Also the id of the join step's record.")
    members: list[Node] = Field(min_length=1)

    def children(self) -> list[Node]:
        return list(self.members)


class Case(_Node):
    when: Condition
    then: Node


class BranchNode(_Node):
    kind: Literal["branch"] = "branch"
    id: StepId
    cases: list[Case] = Field(default_factory=list)
    else_: Node | None = Field(None, alias="else")

    def arms(self) -> list[Node]:
        arms = [case.then for case in self.cases]
        return [*arms, self.else_] if self.else_ is not None else arms

    def children(self) -> list[Node]:
        return self.arms()


class MapNode(_Node):
    kind: Literal["map"] = "map"
    id: StepId = Field(description="Also the id of the join record, whose output is the list of results.")
    over: str = Field(description="Reference to a list: $payload.leads or $steps.find.items.")
    do: StepNode | SequenceNode
    concurrency: int = Field(10, ge=1, le=1000, description="At most this many items run at once.")

    @field_validator("over")
    @classmethod
    def _over(cls, value: str) -> str:
        if not value.startswith("$"):
            raise ValueError(f"must be a $reference to a list, got {value!r}")
        try:
            parse_path(value[1:])
        except RefSyntaxError as exc:
            raise ValueError(str(exc)) from None
        return value

    def children(self) -> list[Node]:
        return [self.do]


class Window(StrictModel):
    """A send window: ``start``-``end`` (``HH:MM``) on ``days`` in ``timezone`` (an IANA name or a
    ``$reference`` to one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: str
    end: str
    days: list[Day] = Field(default_factory=lambda: list(DAYS), min_length=1)  # type: ignore[arg-type]
    timezone: str = Field(description="IANA zone name, or a $reference such as $payload.timezone.")

    @model_validator(mode="after")
    def _check(self) -> Window:
        try:
            start, end = parse_clock(self.start), parse_clock(self.end)
        except TimingError as exc:
            raise ValueError(str(exc)) from None
        if not start < end:
            raise ValueError(f"start {self.start} must be before end {self.end}")
        if self.timezone.startswith("$"):
            _ref(self.timezone)
        else:
            try:
                zone(self.timezone)
            except TimingError as exc:
                raise ValueError(f"timezone: {exc}") from None
        return self


class SleepNode(_Node):
    """Park the run: ``for`` a duration, ``until`` a timestamp, or into the next ``window`` moment."""

    kind: Literal["sleep"]
    id: StepId
    for_: str | None = Field(None, alias="for", description="A duration: 30s, 15m, 2h, 3d.")
    until: str | None = Field(None, description="A timestamp, or a $reference to one.")
    window: Window | None = None

    @model_validator(mode="after")
    def _one(self) -> SleepNode:
        given = [name for name in ("for", "until", "window") if self._given(name)]
        if len(given) != 1:
            have = f"it has {', '.join(given)}" if given else "it has none"
            raise ValueError(f"a sleep takes exactly one of for, until or window ({have})")
        if self.for_ is not None:
            _duration(self.for_)
        if self.until is not None:
            if self.until.startswith("$"):
                _ref(self.until)
            else:
                try:
                    parse_timestamp(self.until)
                except TimingError as exc:
                    raise ValueError(f"until: {exc}") from None
        return self

    def _given(self, name: str) -> bool:
        return getattr(self, "for_" if name == "for" else name) is not None

    def children(self) -> list[Node]:
        return []


class WaitNode(_Node):
    """Park the run until the named ``signal`` comes (its data becomes this node's output), or
    ``timeout`` passes (then ``on_timeout`` runs, if given, and the flow goes on; else the run fails)."""

    kind: Literal["wait"]
    id: StepId
    signal: SignalName
    timeout: str | None = Field(None, description="A duration: 30s, 15m, 2h, 3d.")
    on_timeout: StepNode | None = Field(None, description="Step to run when the timeout passes.")
    correlate: str | None = Field(
        None, description="A $reference whose value a correlated event must carry (e.g. $payload.email)."
    )

    @model_validator(mode="after")
    def _check(self) -> WaitNode:
        if self.timeout is not None:
            _duration(self.timeout)
        if self.on_timeout is not None and self.timeout is None:
            raise ValueError("on_timeout needs a timeout; add one (timeout: 3d)")
        if self.correlate is not None:
            if not self.correlate.startswith("$"):
                raise ValueError(
                    f"correlate must be a $reference such as $payload.email, got {self.correlate!r}"
                )
            _ref(self.correlate)
        return self

    def children(self) -> list[Node]:
        return []


#: The node kinds that park a run (durable time).
PARKING_NODES: tuple[type[_Node], ...] = (SleepNode, WaitNode)


def _node_kind(value: Any) -> str:
    if isinstance(value, BaseModel):
        return str(getattr(value, "kind", "step"))
    if isinstance(value, Mapping):
        kind = value.get("kind")
        if kind is None and "agent" in value:
            return "step"
        return str(kind)
    return "step"


Node = Annotated[
    Annotated[StepNode, Tag("step")]
    | Annotated[SequenceNode, Tag("sequence")]
    | Annotated[ParallelNode, Tag("parallel")]
    | Annotated[BranchNode, Tag("branch")]
    | Annotated[MapNode, Tag("map")]
    | Annotated[SleepNode, Tag("sleep")]
    | Annotated[WaitNode, Tag("wait")],
    Discriminator(
        _node_kind,
        custom_error_type="unknown_node_kind",
        custom_error_message=(
            "node needs kind: step, sequence, parallel, branch, map, sleep or wait (or an agent)"
        ),
    ),
]


class Flow(_Node):
    """A named, versioned flow. ``steps`` run in sequence."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_\-]*$")
    version: str = "1"
    description: str = ""
    input_required: list[str] = Field(default_factory=list, description="Payload fields that must be set.")
    deadline_seconds: float | None = Field(None, gt=0, description="Whole-run deadline.")
    steps: list[Node] = Field(min_length=1)

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> str:
        return str(value)

    @property
    def root(self) -> SequenceNode:
        return SequenceNode(steps=self.steps)

    @cached_property
    def snapshot(self) -> dict[str, Any]:
        """The definition as JSON, stored with every run (computed once; do not mutate)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def walk(self) -> Iterator[Node]:
        """Every node, depth first, in definition order (fallback steps included)."""
        return walk(self.root)

    def step_index(self) -> dict[str, Node]:
        """Node id -> node, for every node that has an id."""
        return {node.id: node for node in self.walk() if node.id is not None}


def walk(node: Node) -> Iterator[Node]:
    yield node
    if isinstance(node, StepNode) and node.fallback is not None:
        yield from walk(node.fallback)
    if isinstance(node, WaitNode) and node.on_timeout is not None:
        yield from walk(node.on_timeout)
    for child in node.children():
        yield from walk(child)


for _model in (StepNode, SequenceNode, ParallelNode, Case, BranchNode, MapNode, SleepNode, WaitNode, Flow):
    _model.model_rebuild()
