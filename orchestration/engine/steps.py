"""What every step does, independent of how it was delivered (a Celery task or the inline runner).

Each function reads the run from the store, does its one thing, writes its record keyed by
``(run_id, step_id)`` and returns an :class:`Outcome` telling the caller how to go on.
"""

from __future__ import annotations

import enum
import re
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.engine import Connection

from orchestration.flows.model import BranchNode, Flow, MapNode, Node, StepNode, walk
from orchestration.flows.refs import lookup, resolve
from orchestration.registry import AgentSpec, RetryPolicy, registry
from orchestration.settings import get_settings
from orchestration.store import get_engine
from orchestration.store import repository as repo
from orchestration.store.db import autocommit

TERMINAL = ("succeeded", "failed", "cancelled")
_ITEM_ID = re.compile(r"^(?P<map>[^\[]+)\[(?P<index>\d+)\](?:\.(?P<inner>.+))?$")


class Action(enum.Enum):
    CONTINUE = "continue"  # go on with the next step
    STOP = "stop"  # the run is terminal (cancelled, failed elsewhere, past its deadline): stop quietly
    FAILED = "failed"  # this step failed the run
    RETRY = "retry"  # try this step again after ``countdown`` seconds
    FALLBACK = "fallback"  # run ``fallback`` instead of this step


@dataclass(frozen=True)
class Outcome:
    action: Action
    countdown: float = 0.0
    fallback: StepNode | None = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class StepContext:
    """Passed to agents; matches ``agents.context.AgentContext`` structurally."""

    run_id: str
    step_id: str
    attempt: int
    config: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def idempotency_key(self) -> str:
        return f"{self.run_id}:{self.step_id}"


_flows: dict[tuple[str, str], tuple[dict[str, Any] | str, Flow, dict[str, Node]]] = {}


def flow_of(state: repo.RunState) -> tuple[Flow, dict[str, Node]]:
    """The run's flow (its stored snapshot), parsed once per process per name, version and text."""
    key = (state.flow_name, state.flow_version)
    cached = _flows.get(key)
    if cached is None or cached[0] != state.flow_def:
        snapshot = state.flow_def
        if isinstance(snapshot, str):
            flow = Flow.model_validate_json(snapshot)
        else:
            flow = Flow.model_validate(snapshot)
        cached = _flows[key] = (snapshot, flow, flow.step_index())
    return cached[1], cached[2]


def agent_config() -> dict[str, str | None]:
    s = get_settings()
    return {
        "database_url": s.effective_database_url(),
        "smtp_url": s.smtp_url,
        "llm_base_url": s.llm_base_url,
        "llm_api_key": s.llm_api_key,
        "llm_model": s.llm_model,
    }


def error_dict(exc: BaseException, attempt: int | None = None) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "message": str(exc) or type(exc).__name__,
        "attempt": attempt,
        "at": datetime.now(UTC).isoformat(),
    }


def _resolve_step(
    state: repo.RunState, index: dict[str, Node], step_id: str
) -> tuple[StepNode, dict[str, Any]]:
    """The node of ``step_id`` and the scope its input is built from (map items get ``item``)."""
    scope = state.scope()
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
    scope["steps"] = {**state.outputs, **{k: v for k, v in own.items() if v is not None}}
    return inner, scope


def _input(node: StepNode, scope: dict[str, Any]) -> Any:
    if node.input is not None:
        return resolve(node.input, scope)
    if "item" in scope:
        item = scope["item"]
        return item if isinstance(item, dict) else {"item": item}
    return scope["payload"]


def _policy(node: StepNode, spec: AgentSpec) -> RetryPolicy:
    return node.retry or spec.retry


def _retryable(exc: BaseException, policy: RetryPolicy) -> bool:
    if isinstance(exc, ValidationError) or type(exc).__name__ in policy.non_retryable:
        return False
    return bool(getattr(exc, "retryable", True))


def _gate(conn: Connection, state: repo.RunState) -> Outcome | None:
    """Stop when the run is already terminal or past its deadline; start it when queued."""
    if state.status in TERMINAL:
        return Outcome(Action.STOP)
    if state.deadline_at is not None and datetime.now(UTC) > state.deadline_at:
        err = {"type": "DeadlineExceeded", "message": f"run deadline {state.deadline_at.isoformat()} passed"}
        repo.finish_run(conn, state.run_id, "failed", err)
        return Outcome(Action.STOP, error=err)
    if state.status == "queued":
        repo.mark_run_running(conn, state.run_id)
    return None


def run_agent_step(run_id: str, step_id: str, *, agent: str, final: bool = False) -> Outcome:
    """One try of one agent step. Calls the agent only when the record is not already succeeded.

    ``agent`` is the agent the caller runs (the Celery task's agent); it must be the step's.
    """
    with autocommit() as conn:  # one statement reads the run and begins the step (Postgres)
        state, start = repo.start_step(conn, run_id, step_id, agent)
        if start is None:  # the run is not live, or past its deadline
            return _gate(conn, state) or Outcome(Action.STOP)
        _flow, index = flow_of(state)
        node, scope = _resolve_step(state, index, step_id)
        spec = registry.agent(node.agent)
        if spec.name != agent:
            raise ValueError(f"step {step_id!r} runs agent {spec.name!r}, not {agent!r}")
    if start.already_done:
        if final:  # a redelivered last step whose record is in: the run may still need ending
            finalize(run_id)
        return Outcome(Action.CONTINUE)

    policy = _policy(node, spec)
    ctx = StepContext(run_id, step_id, start.attempts, agent_config())
    try:
        inp = spec.input_model.model_validate(_input(node, scope))
        result = spec.handler(inp, ctx)
        output = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
    except Exception as exc:
        return _on_agent_error(run_id, step_id, node, policy, start, exc, final)
    with _writer(final) as conn:
        written = repo.finish_step(conn, run_id, step_id, status="succeeded", output=output, ends_run=final)
        if not written and repo.run_status(conn, run_id) == "cancelled":
            repo.discard_step(conn, run_id, step_id)
            return Outcome(Action.STOP)
    return Outcome(Action.CONTINUE)


def _writer(ends_run: bool) -> AbstractContextManager[Connection]:
    """Where a record write goes: autocommit, unless it also ends the run on a database that needs a
    transaction to make the two writes one (the store knows which)."""
    return repo.step_writer(ends_run)


def _on_agent_error(
    run_id: str,
    step_id: str,
    node: StepNode,
    policy: RetryPolicy,
    start: repo.StepStart,
    exc: BaseException,
    final: bool,
) -> Outcome:
    err = error_dict(exc, start.attempts)
    errors = [*start.attempt_errors, err]
    retry = _retryable(exc, policy) and start.attempts < policy.max_attempts
    with get_engine().begin() as conn:
        if retry:
            repo.finish_step(conn, run_id, step_id, status="pending", error=err, attempt_errors=errors)
            return Outcome(Action.RETRY, countdown=policy.delay(start.attempts), error=err)
        repo.finish_step(conn, run_id, step_id, status="failed", error=err, attempt_errors=errors)
        if node.fallback is not None:
            return Outcome(Action.FALLBACK, fallback=node.fallback, error=err)
        if node.on_error == "continue":
            if final:
                repo.finish_run(conn, run_id, "succeeded")
            return Outcome(Action.CONTINUE, error=err)
        repo.finish_run(conn, run_id, "failed", {**err, "step_id": step_id})
    return Outcome(Action.FAILED, error=err)


def join(run_id: str, node_id: str, *, final: bool = False) -> Outcome:
    """The explicit join after a parallel block or a map: one record, and the map's list of results."""
    with _writer(final) as conn:
        state = repo.load_state(conn, run_id)
        gate = _gate(conn, state)
        if gate is not None:
            return gate
        _flow, index = flow_of(state)
        node = index[node_id]
        output: Any = None
        if isinstance(node, MapNode):
            count = len(lookup(state.scope(), node.over[1:]) or [])
            last = node.do.id if isinstance(node.do, StepNode) else node.do.steps[-1].id
            ids = [item_step_id(node, i, last) for i in range(count)]
            output = [state.outputs.get(sid) for sid in ids]
        repo.record_step(
            conn, run_id, node_id, agent="engine.join", status="succeeded", output=output, ends_run=final
        )
    return Outcome(Action.CONTINUE)


def item_step_id(node: MapNode, index: int, inner: str | None) -> str:
    prefix = f"{node.id}[{index}]"
    return prefix if isinstance(node.do, StepNode) else f"{prefix}.{inner}"


def map_item_ids(node: MapNode, index: int) -> list[str]:
    if isinstance(node.do, StepNode):
        return [item_step_id(node, index, None)]
    return [item_step_id(node, index, s.id) for s in node.do.steps if isinstance(s, StepNode)]


def expand_map(run_id: str, node_id: str) -> tuple[Outcome, MapNode, int]:
    """Count the items a map runs over (from the stored payload and outputs: deterministic)."""
    with get_engine().begin() as conn:
        state = repo.load_state(conn, run_id)
        _flow, index = flow_of(state)
        node = index[node_id]
        assert isinstance(node, MapNode)
        gate = _gate(conn, state)
        if gate is not None:
            return gate, node, 0
        items = lookup(state.scope(), node.over[1:])
        if not isinstance(items, list):
            err = {
                "type": "MapInputError",
                "message": f"{node.over} is {type(items).__name__}, not a list",
                "step_id": node_id,
            }
            repo.record_step(conn, run_id, node_id, agent="engine.map", status="failed", error=err)
            repo.finish_run(conn, run_id, "failed", err)
            return Outcome(Action.FAILED, error=err), node, 0
        repo.record_step(
            conn, run_id, node_id, agent="engine.map", status="running", output={"items": len(items)}
        )
    return Outcome(Action.CONTINUE), node, len(items)


def choose_branch(run_id: str, node_id: str) -> tuple[Outcome, Node | None]:
    """Evaluate the branch on the run's state; the choice is recorded and reused on redelivery."""
    with get_engine().begin() as conn:
        state = repo.load_state(conn, run_id)
        gate = _gate(conn, state)
        if gate is not None:
            return gate, None
        _flow, index = flow_of(state)
        node = index[node_id]
        assert isinstance(node, BranchNode)
        chosen = _choice(conn, state, node)
        arms = node.arms()
        taken = arms[chosen] if chosen is not None and chosen < len(arms) else None
        skipped = [n for i, arm in enumerate(arms) if i != chosen for n in walk(arm)]
        repo.skip_steps(conn, run_id, [(n.id, getattr(n, "agent", None)) for n in skipped if n.id])
    return Outcome(Action.CONTINUE), taken


def _choice(conn: Connection, state: repo.RunState, node: BranchNode) -> int | None:
    previous = state.outputs.get(node.id)
    if isinstance(previous, dict) and "arm" in previous:
        return previous["arm"]  # type: ignore[no-any-return]
    scope = state.scope()
    chosen: int | None = next((i for i, c in enumerate(node.cases) if c.when.evaluate(scope)), None)
    label = f"cases[{chosen}]" if chosen is not None else "else" if node.else_ is not None else "none"
    if chosen is None and node.else_ is not None:
        chosen = len(node.cases)
    repo.record_step(
        conn,
        state.run_id,
        node.id,
        agent="engine.branch",
        status="succeeded",
        output={"arm": chosen, "taken": label},
    )
    return chosen


def finalize(run_id: str) -> None:
    """End the run ``succeeded`` unless it already ended."""
    with autocommit() as conn:
        repo.finish_run(conn, run_id, "succeeded")


def sleep_for_retry(countdown: float) -> None:
    time.sleep(countdown)
