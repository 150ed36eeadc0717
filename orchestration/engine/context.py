"""What every step reads before it acts: the run's flow (parsed once per process), the node and
the scope its input is built from, the gate that stops work on a finished run, the agent's context."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from sqlalchemy.engine import Connection

from orchestration.engine.guards import StepGuards
from orchestration.engine.outcome import Action, Outcome
from orchestration.flows.model import Flow, MapNode, Node, StepNode
from orchestration.flows.refs import lookup, resolve
from orchestration.names import TERMINAL_RUN_STATUSES
from orchestration.settings import get_settings
from orchestration.step_error import StepError
from orchestration.store import repository as repo

_ITEM_ID = re.compile(r"^(?P<map>[^\[]+)\[(?P<index>\d+)\](?:\.(?P<inner>.+))?$")


@dataclass(frozen=True)
class StepContext:
    """Passed to agents; matches ``agents.context.AgentContext`` structurally."""

    run_id: str
    step_id: str
    attempt: int
    config: Mapping[str, str | None] = field(default_factory=dict)
    campaign: str | None = None

    @property
    def idempotency_key(self) -> str:
        return f"{self.run_id}:{self.step_id}"

    @cached_property
    def guards(self) -> StepGuards:
        """The sending guards of this step (suppression, caps, domain backoff, unsubscribe headers)."""
        return StepGuards(self.run_id, self.step_id, self.campaign)


@dataclass(frozen=True)
class _Parsed:
    snapshot: dict[str, Any] | str
    flow: Flow
    index: dict[str, Node]
    #: (step id, its fallback's id) for every step with a fallback
    fallbacks: tuple[tuple[str, str], ...]


_flows: dict[tuple[str, str], _Parsed] = {}


def _parsed(state: repo.RunState) -> _Parsed:
    key = (state.flow_name, state.flow_version)
    cached = _flows.get(key)
    if cached is None or cached.snapshot != state.flow_def:
        snapshot = state.flow_def
        if isinstance(snapshot, str):
            flow = Flow.model_validate_json(snapshot)
        else:
            flow = Flow.model_validate(snapshot)
        index = flow.step_index()
        fallbacks = tuple(
            (node.id, node.fallback.id)
            for node in index.values()
            if isinstance(node, StepNode) and node.fallback is not None
        )
        cached = _flows[key] = _Parsed(snapshot, flow, index, fallbacks)
    return cached


def flow_of(state: repo.RunState) -> tuple[Flow, dict[str, Node]]:
    """The run's flow (its stored snapshot), parsed once per process per name, version and text."""
    parsed = _parsed(state)
    return parsed.flow, parsed.index


def scope_of(state: repo.RunState) -> dict[str, Any]:
    """What references and conditions read: the payload, the steps' outputs, the run. A step that
    failed and whose fallback succeeded reads as its fallback's output (``$steps.compose`` is the
    message, whichever of the two made it)."""
    scope = state.scope()
    outputs = scope["steps"]
    stand_ins = {
        step: outputs[fallback]
        for step, fallback in _parsed(state).fallbacks
        if step not in outputs and fallback in outputs
    }
    if stand_ins:
        scope["steps"] = {**outputs, **stand_ins}
    return scope


def agent_config() -> dict[str, str | None]:
    s = get_settings()
    return {
        "database_url": s.effective_database_url(),
        "smtp_url": s.smtp_url,
        "llm_base_url": s.llm_base_url,
        "llm_api_key": s.llm_api_key,
        "llm_model": s.llm_model,
    }


def resolve_step(
    state: repo.RunState, index: dict[str, Node], step_id: str
) -> tuple[StepNode, dict[str, Any]]:
    """The node of ``step_id`` and the scope its input is built from (map items get ``item``)."""
    scope = scope_of(state)
    match = _ITEM_ID.match(step_id)
    if match is None:
        node = index[step_id]
        assert isinstance(node, StepNode), f"{step_id} is a {node.kind}, not a step"
        return node, scope
    map_node = index[match["map"]]
    assert isinstance(map_node, MapNode)
    items = lookup(scope, map_node.over[1:]) or []
    i = int(match["index"])
    prefix = f"{map_node.id}[{i}]"
    scope["item"] = items[i]
    if isinstance(map_node.do, StepNode):
        return map_node.do, scope
    inner = index[match["inner"]]
    assert isinstance(inner, StepNode)
    own = {s.id: state.outputs.get(f"{prefix}.{s.id}") for s in map_node.do.steps if isinstance(s, StepNode)}
    scope["steps"] = {**scope["steps"], **{k: v for k, v in own.items() if v is not None}}
    return inner, scope


def step_input(node: StepNode, scope: dict[str, Any]) -> Any:
    if node.input is not None:
        return resolve(node.input, scope)
    if "item" in scope:
        item = scope["item"]
        return item if isinstance(item, dict) else {"item": item}
    return scope["payload"]


def gate_run(conn: Connection, state: repo.RunState) -> Outcome | None:
    """Stop when the run is already terminal or past its deadline (failing it, and its open
    records); start it when queued."""
    if state.status in TERMINAL_RUN_STATUSES:
        return Outcome(Action.STOP)
    if state.deadline_at is not None and datetime.now(UTC) > state.deadline_at:
        err = StepError.deadline_exceeded(state.deadline_at)
        if repo.finish_run(conn, state.run_id, "failed", err.as_dict()):
            repo.fail_unfinished_steps(conn, state.run_id, err.as_dict())  # nothing stays open
        return Outcome(Action.STOP, error=err)
    if state.status == "queued":
        repo.mark_run_running(conn, state.run_id)
    return None
