"""The engine's own nodes: the join after a parallel block or a map, the map's expansion, the branch's
choice, and ending a run."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from orchestration.engine.context import flow_of, gate_run, scope_of
from orchestration.engine.outcome import Action, Outcome
from orchestration.engine.writer import writer
from orchestration.flows.model import BranchNode, MapNode, Node, StepNode, walk
from orchestration.flows.refs import lookup
from orchestration.names import LIVE_RUN_STATUSES
from orchestration.step_error import StepError
from orchestration.store import repository as repo
from orchestration.store import sql_engine
from orchestration.store.db import autocommit


def join(run_id: str, node_id: str, *, final: bool = False) -> Outcome:
    """The explicit join after a parallel block or a map: one record, and the map's list of results."""
    with writer(final) as conn:
        state = repo.load_state(conn, run_id)
        gate = gate_run(conn, state)
        if gate is not None:
            return gate
        _flow, index = flow_of(state)
        node = index[node_id]
        output: Any = None
        if isinstance(node, MapNode):
            count = len(lookup(scope_of(state), node.over[1:]) or [])
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
    """Count the items a map runs over (from the stored payload and outputs: deterministic).

    The map's record stays ``running`` until its join, so it is written under the run's row lock:
    a cancel that commits meanwhile either comes first (the map sees the run cancelled) or waits
    and then closes the record, never leaving it open."""
    with sql_engine().begin() as conn:
        repo.lock_run(conn, run_id)
        state = repo.load_state(conn, run_id)
        _flow, index = flow_of(state)
        node = index[node_id]
        assert isinstance(node, MapNode)
        gate = gate_run(conn, state)
        if gate is not None:
            return gate, node, 0
        items = lookup(scope_of(state), node.over[1:])
        if not isinstance(items, list):
            err = StepError.map_input(node.over, items, node_id)
            repo.record_step(conn, run_id, node_id, agent="engine.map", status="failed", error=err.as_dict())
            repo.finish_run(conn, run_id, "failed", err.as_dict())
            return Outcome(Action.FAILED, error=err), node, 0
        repo.record_step(
            conn, run_id, node_id, agent="engine.map", status="running", output={"items": len(items)}
        )
    return Outcome(Action.CONTINUE), node, len(items)


def choose_branch(run_id: str, node_id: str) -> tuple[Outcome, Node | None]:
    """Evaluate the branch on the run's state; the choice is recorded and reused on redelivery."""
    with sql_engine().begin() as conn:
        state = repo.load_state(conn, run_id)
        gate = gate_run(conn, state)
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
    scope = scope_of(state)
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
    """End the run ``succeeded`` unless it already ended; past its deadline it fails instead."""
    with autocommit() as conn:
        if not repo.succeed_run(conn, run_id) and repo.run_status(conn, run_id) in LIVE_RUN_STATUSES:
            repo.finish_run(conn, run_id, "failed", StepError.deadline_exceeded().as_dict())
