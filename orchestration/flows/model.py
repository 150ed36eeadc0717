"""Flow definitions: a discriminated union of node kinds.

``step`` (one agent call), ``sequence``, ``parallel`` (members at once, then a join), ``branch``
(first matching case, else ``else``), ``map`` (one step or sub-sequence per item of a list, with a
concurrency cap, then a join). Nodes nest. A node dict without ``kind`` that has ``agent`` is a step.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from orchestration.flows.conditions import Condition
from orchestration.flows.limits import LimitDecl
from orchestration.flows.refs import RefSyntaxError, parse_path
from orchestration.flows.retry import RetryPolicy
from orchestration.flows.strict import StrictModel

ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_\-]*$"
StepId = Annotated[str, Field(pattern=ID_PATTERN, max_length=80)]
OnError = Literal["fail", "continue"]


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
    | Annotated[MapNode, Tag("map")],
    Discriminator(
        _node_kind,
        custom_error_type="unknown_node_kind",
        custom_error_message="node needs kind: step, sequence, parallel, branch or map (or an agent)",
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
    for child in node.children():
        yield from walk(child)


for _model in (StepNode, SequenceNode, ParallelNode, Case, BranchNode, MapNode, Flow):
    _model.model_rebuild()
