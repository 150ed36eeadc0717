"""Turn a raw definition into a checked :class:`Flow`, or a :class:`FlowValidationError` whose lines
name the path and the fix: ``steps[2].agent: unknown agent 'scorer' (registered: enrich, score)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from orchestration.errors import FlowValidationError
from orchestration.flows.agents import AgentInfo, AgentLookup
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
from orchestration.flows.refs import RefSyntaxError, parse_path, refs_in, resolve
from orchestration.flows.strict import known_fields

_TAGS = {"step", "sequence", "parallel", "branch", "map", "sleep", "wait", "compare", "all", "any", "not"}
_UNION_FIELDS = {"then", "else", "when", "not", "fallback", "do", "all", "any", "on_timeout"}
_HINTS = {
    "missing": "add it",
    "extra_forbidden": "remove it or check its spelling",
    "too_short": "give it at least one entry",
    "string_pattern_mismatch": "use letters, digits, _ or -, starting with a letter",
    "unknown_node_kind": "set kind to step, sequence, parallel, branch, map, sleep or wait",
}


def format_loc(loc: Iterable[Any]) -> str:
    out = ""
    prev: Any = None
    for part in loc:
        if isinstance(part, str) and part in _TAGS and (isinstance(prev, int) or prev in _UNION_FIELDS):
            prev = part
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
        prev = part
    return out or "(flow)"


def _pydantic_problems(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        hint = _HINTS.get(err["type"])
        msg = err["msg"] + (f" ({hint})" if hint else "")
        problems.append(f"{format_loc(err['loc'])}: {msg}")
    return problems


def parse_flow(raw: Mapping[str, Any] | Flow, registry: AgentLookup | None = None) -> Flow:
    """Validate shape, then meaning (ids, agents, references) when a registry is given."""
    if isinstance(raw, Flow):
        flow = raw
    else:
        try:
            flow = Flow.model_validate(raw)
        except ValidationError as exc:
            raise FlowValidationError(_pydantic_problems(exc)) from None
    problems = _Checker(registry).check(flow)
    if problems:
        raise FlowValidationError(problems)
    return flow


def literal_input_problems(template: dict[str, Any], agent: AgentInfo, path: str) -> list[str]:
    """What the agent's input model says about a step's input before it runs: wrong literal values
    (fields whose value holds no ``$reference``; the referenced ones are checked at run time),
    fields the agent does not take, required fields given neither a value nor a reference."""
    model = agent.input_model
    literal = {k: resolve(v, {}) for k, v in template.items() if not refs_in(v)}
    referenced = set(template) - set(literal)
    errors: list[Any] = []
    try:
        model.model_validate(literal)
    except ValidationError as exc:
        errors = list(exc.errors())
    fields = known_fields(model)
    problems = []
    for err in errors:
        loc = err["loc"]
        if not loc or loc[0] in referenced:  # a check of the whole input needs the referenced values
            continue
        if err["type"] == "missing":
            fix = f"required by agent {agent.name!r}; give it a value or a $reference"
        elif err["type"] == "extra_forbidden":
            fix = f"agent {agent.name!r} takes no such field (fields: {', '.join(fields)}); remove it"
        else:
            fix = f"{err['msg']} (agent {agent.name!r}); fix the value"
        problems.append(f"{path}.{format_loc(loc)}: {fix}")
    if model.model_config.get("extra") != "allow":
        problems += [
            f"{path}.{name}: agent {agent.name!r} takes no field {name!r} (fields: {', '.join(fields)}); "
            "remove it or check its spelling"
            for name in template
            if name not in fields and not any(err["loc"][:1] == (name,) for err in errors)
        ]
    return problems


class _Checker:
    def __init__(self, registry: AgentLookup | None) -> None:
        self.registry = registry
        self.problems: list[str] = []
        self.seen: dict[str, str] = {}
        #: step id -> the agents whose output ``$steps.<id>`` may read: its own, then its fallback's
        self.agents: dict[str, list[str]] = {}
        #: Where the node being checked sits inside a fan-out (a parallel member, a map), if it does.
        self.fan_out: list[str] = []

    def check(self, flow: Flow) -> list[str]:
        available: set[str] = set()
        for i, node in enumerate(flow.steps):
            available = self.node(node, f"steps[{i}]", available, in_map=False)
        return self.problems

    def _id(self, node_id: str, path: str) -> None:
        if node_id in self.seen:
            self.problems.append(
                f"{path}.id: duplicate id {node_id!r} (first used at {self.seen[node_id]}); make it unique"
            )
        else:
            self.seen[node_id] = path

    def _refs(self, template: Any, path: str, available: set[str], in_map: bool) -> None:
        for ref in refs_in(template):
            self._path(ref, path, available, in_map, prefix="$")

    def _path(self, ref: str, path: str, available: set[str], in_map: bool, prefix: str = "") -> None:
        try:
            parts = parse_path(ref)
        except RefSyntaxError as exc:
            self.problems.append(f"{path}: {exc}")
            return
        if parts[0] == "item" and not in_map:
            self.problems.append(f"{path}: {prefix}{ref} is only defined inside a map's do")
        if parts[0] != "steps":
            return
        step = parts[1]
        if step not in available:
            have = ", ".join(sorted(available)) or "none yet"
            self.problems.append(
                f"{path}: {prefix}{ref} refers to step {step!r}, which no earlier step produces "
                f"(available here: {have})"
            )
            return
        if len(parts) < 3 or self.registry is None:
            return
        for i, agent in enumerate(self.agents.get(step, [])):  # the step's agent, then its fallback's
            model = self.registry.agent(agent).output_model
            fields = model.model_fields
            if parts[2] not in fields and model.model_config.get("extra") != "allow":
                whose = f"agent {agent!r}" if i == 0 else f"its fallback's agent {agent!r}"
                self.problems.append(
                    f"{path}: {prefix}{ref}: {whose} outputs no field {parts[2]!r} "
                    f"(fields: {', '.join(sorted(fields))})"
                )
                return

    def _condition(self, cond: BaseModel, path: str, available: set[str], in_map: bool) -> None:
        fields: list[str] = cond.fields()  # type: ignore[attr-defined]
        for field in fields:
            self._path(field, path, available, in_map)

    def node(self, node: Node, path: str, available: set[str], *, in_map: bool) -> set[str]:
        if node.id is not None:
            self._id(node.id, path)
        if isinstance(node, StepNode):
            return self._step(node, path, available, in_map)
        if isinstance(node, SequenceNode):
            for i, child in enumerate(node.steps):
                available = self.node(child, f"{path}.steps[{i}]", available, in_map=in_map)
            return available
        if isinstance(node, ParallelNode):
            after = set(available)
            self.fan_out.append(f"parallel {node.id!r}")
            for i, member in enumerate(node.members):
                after |= self.node(member, f"{path}.members[{i}]", set(available), in_map=in_map)
            self.fan_out.pop()
            return after | {node.id}
        if isinstance(node, BranchNode):
            return self._branch(node, path, available, in_map)
        if isinstance(node, SleepNode | WaitNode):
            return self._park(node, path, available, in_map)
        self.fan_out.append(f"map {node.id!r}")
        after = self._map(node, path, available)
        self.fan_out.pop()
        return after

    def _park(self, node: SleepNode | WaitNode, path: str, available: set[str], in_map: bool) -> set[str]:
        """A sleep or a wait parks the whole run: only where the run is one line of steps."""
        if self.fan_out:
            self.problems.append(
                f"{path}: a {node.kind} cannot sit inside {self.fan_out[-1]} (it parks the whole run); "
                "put it at the top level, in a sequence or in a branch arm, before or after the "
                f"{self.fan_out[-1].split()[0]}"
            )
        if isinstance(node, SleepNode):
            if node.until is not None and node.until.startswith("$"):
                self._path(node.until[1:], f"{path}.until", available, in_map, prefix="$")
            if node.window is not None and node.window.timezone.startswith("$"):
                self._path(node.window.timezone[1:], f"{path}.window.timezone", available, in_map, prefix="$")
            return available | {node.id}
        if node.correlate is not None:
            self._path(node.correlate[1:], f"{path}.correlate", available, in_map, prefix="$")
        after = available | {node.id}
        if node.on_timeout is not None:
            self._id(node.on_timeout.id, f"{path}.on_timeout")
            after = self._step(node.on_timeout, f"{path}.on_timeout", after, in_map)
        return after

    def _step(self, node: StepNode, path: str, available: set[str], in_map: bool) -> set[str]:
        if self.registry is not None:
            try:
                spec = self.registry.agent(node.agent, path=f"{path}.agent")
            except LookupError as exc:
                self.problems.append(str(exc).strip("'\""))
                spec = None
            if spec is not None:
                self.agents[node.id] = [spec.name]
                limit = node.time_limit or spec.time_limit
                soft = node.soft_time_limit or spec.soft_time_limit
                if soft >= limit:
                    self.problems.append(
                        f"{path}.soft_time_limit: {soft} must be below time_limit {limit}; lower it"
                    )
                if node.input is not None:
                    self.problems += literal_input_problems(node.input, spec, f"{path}.input")
        if node.input is not None:
            self._refs(node.input, f"{path}.input", available, in_map)
        after = available | {node.id}
        if node.fallback is not None:
            after = self._step(node.fallback, f"{path}.fallback", available, in_map)
            self._id(node.fallback.id, f"{path}.fallback")
            after |= {node.id}
            if node.id in self.agents:  # the fallback's output stands in for the step's
                self.agents[node.id] += self.agents.get(node.fallback.id, [])
        return after

    def _branch(self, node: BranchNode, path: str, available: set[str], in_map: bool) -> set[str]:
        if not node.cases and node.else_ is None:
            self.problems.append(f"{path}: branch {node.id!r} has no way out; add cases or an else")
        after = set(available)
        for i, case in enumerate(node.cases):
            self._condition(case.when, f"{path}.cases[{i}].when", available, in_map)
            after |= self.node(case.then, f"{path}.cases[{i}].then", set(available), in_map=in_map)
        if node.else_ is not None:
            after |= self.node(node.else_, f"{path}.else", set(available), in_map=in_map)
        return after | {node.id}

    def _map(self, node: MapNode, path: str, available: set[str]) -> set[str]:
        self._path(node.over[1:], f"{path}.over", available, in_map=False, prefix="$")
        inner = [node.do] if isinstance(node.do, StepNode) else node.do.steps
        for i, child in enumerate(inner):
            where = f"{path}.do" if isinstance(node.do, StepNode) else f"{path}.do.steps[{i}]"
            if not isinstance(child, StepNode):
                self.problems.append(
                    f"{where}: a map's do holds steps only; move the {child.kind} after the map"
                )
            elif child.fallback is not None:
                self.problems.append(f"{where}.fallback: not allowed inside a map; use on_error: continue")
        self.node(node.do, f"{path}.do", set(available), in_map=True)
        return available | {node.id}
