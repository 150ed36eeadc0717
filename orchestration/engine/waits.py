"""Durable time in the engine: parking a run at a ``sleep`` or ``wait`` node, and waking it.

Parking (the park task, or the inline runner) happens in one transaction under the run's row lock:
the node's record becomes ``running`` with what it waits for, a timer (``due_at``) and/or an open
wait goes into the store, the run becomes ``waiting``, and the task stops its chain. Nothing of the
run is left on the broker or on a worker.

Waking (:func:`wake`: a timer the poller fired, a signal, a correlated event) happens in the
transaction of whoever woke it, also under the run's row lock: the node's record gets its outcome,
the run goes back to ``running`` and its next publication (kind ``wake`` or ``timeout``, ``resume``
= the node) goes into the outbox, so the claim, the wake-up and the publication cannot disagree.
After the commit the caller publishes it (``publish.publish_now``; the relay if that fails); the
continuation is compiled from the run's stored flow snapshot (``continuation``).

A parking node's record keeps, in its output, the ``publication`` that carried the flow on after it.
A copy of the park message delivered again later stops there; a newer publication (a retry of a
run that failed after it woke, a re-drive) goes on past it. A wait that found its signal already
kept goes on in place (``in_place``): a copy of that message goes on too, as any redelivered step.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

from orchestration.engine.context import flow_of, gate_run, scope_of
from orchestration.engine.continuation import continuation
from orchestration.engine.outcome import Action, Outcome
from orchestration.errors import RunNotFoundError
from orchestration.flows.model import SleepNode, WaitNode
from orchestration.flows.refs import lookup
from orchestration.flows.timing import (
    TimingError,
    next_in_window,
    parse_clock,
    parse_duration,
    parse_timestamp,
    zone,
)
from orchestration.names import RunStatus
from orchestration.step_error import StepError
from orchestration.store import outbox, sql_engine, waits
from orchestration.store import repository as repo
from orchestration.timefmt import iso_utc

SLEEP_AGENT = "engine.sleep"
WAIT_AGENT = "engine.wait"


def due_of(node: SleepNode, scope: dict[str, Any], now: datetime) -> datetime:
    """When a sleep wakes, from the run's data; :class:`TimingError` names the field and the fix."""
    if node.for_ is not None:
        return now + parse_duration(node.for_)
    if node.until is not None:
        return parse_timestamp(_value(node.until, scope, "until"))
    window = node.window
    assert window is not None
    tz_name = _value(window.timezone, scope, "window.timezone")
    try:
        tz = zone(tz_name)
    except TimingError as exc:
        raise TimingError(f"{_field(window.timezone, 'window.timezone')}: {exc}") from None
    return next_in_window(now, parse_clock(window.start), parse_clock(window.end), window.days, tz)


def _field(template: str, where: str) -> str:
    return template[1:] if template.startswith("$") else where


def _value(template: str, scope: dict[str, Any], where: str) -> Any:
    """A literal, or the value of a ``$reference`` (a missing one names the field)."""
    if not template.startswith("$"):
        return template
    value = lookup(scope, template[1:])
    if value is None:
        raise TimingError(f"{template[1:]}: not set; give the run a value there ({where} reads it)")
    return value


# ------------------------------------------------------------------------------------------ parking
def park(run_id: str, node_id: str) -> Outcome:
    """Park the run at ``node_id``: ``PARK`` (the caller stops its chain), ``CONTINUE`` (a signal
    kept for this wait was there already, or a newer publication goes on past the node), ``STOP``
    or ``FAILED``."""
    now = datetime.now(UTC)
    with sql_engine().begin() as conn:
        if repo.lock_run(conn, run_id) is None:
            raise RunNotFoundError(run_id)
        state = repo.load_state(conn, run_id)
        gate = gate_run(conn, state)
        if gate is not None:
            return gate
        if state.status == RunStatus.WAITING:
            return Outcome(Action.PARK)  # a copy of the message that parked it
        _flow, index = flow_of(state)
        node = index[node_id]
        assert isinstance(node, SleepNode | WaitNode), f"{node_id} is a {node.kind}"
        if state.statuses.get(node_id) == "succeeded":
            done = state.outputs.get(node_id) or {}
            # the chain went on from this very message (a kept signal), or a newer publication
            # carries the flow past the node: go on; a wake-up's publication carries it: stop
            here = bool(done.get("in_place"))
            newer = done.get("publication", 0) < waits.run_publication(conn, run_id)
            return Outcome(Action.CONTINUE if here or newer else Action.PARK)
        if isinstance(node, SleepNode):
            return _park_sleep(conn, state, node, now)
        return _park_wait(conn, state, node, now)


def _park_sleep(conn: Connection, state: repo.RunState, node: SleepNode, now: datetime) -> Outcome:
    try:
        due = due_of(node, scope_of(state), now)
    except TimingError as exc:
        err = StepError.bad_time(node.id, str(exc))
        repo.record_step(conn, state.run_id, node.id, agent=SLEEP_AGENT, status="failed", error=err.as_dict())
        repo.finish_run(conn, state.run_id, "failed", err.as_dict())
        return Outcome(Action.FAILED, error=err)
    waits.add_timer(conn, state.run_id, node.id, waits.SLEEP, due)
    output = {"until": iso_utc(due)}
    repo.record_step(conn, state.run_id, node.id, agent=SLEEP_AGENT, status="running", output=output)
    waits.set_waiting(conn, state.run_id)
    return Outcome(Action.PARK)


def _park_wait(conn: Connection, state: repo.RunState, node: WaitNode, now: datetime) -> Outcome:
    kept = waits.consume_signal(conn, state.run_id, node.signal, node.id)
    if kept is not None:
        output = {**signal_output(kept, waits.run_publication(conn, state.run_id)), "in_place": True}
        repo.record_step(conn, state.run_id, node.id, agent=WAIT_AGENT, status="succeeded", output=output)
        return Outcome(Action.CONTINUE)
    timeout_at = now + parse_duration(node.timeout) if node.timeout is not None else None
    correlation = None
    if node.correlate is not None:
        value = lookup(scope_of(state), node.correlate[1:])
        correlation = None if value is None else str(value)
    waits.open_wait(conn, state.run_id, node.id, node.signal, correlation=correlation, timeout_at=timeout_at)
    if timeout_at is not None:
        waits.add_timer(conn, state.run_id, node.id, waits.TIMEOUT, timeout_at)
    output = {"signal": node.signal, "until": iso_utc(timeout_at) if timeout_at else None}
    repo.record_step(conn, state.run_id, node.id, agent=WAIT_AGENT, status="running", output=output)
    waits.set_waiting(conn, state.run_id)
    return Outcome(Action.PARK)


def signal_output(signal: waits.Signal, publication: int) -> dict[str, Any]:
    """A wait's output when its signal came: ``$steps.<id>.data`` is the signal's data."""
    return {
        "signal": signal.name,
        "data": signal.data,
        "signal_id": signal.signal_id,
        "received_at": iso_utc(signal.created_at),
        "publication": publication,
    }


# ------------------------------------------------------------------------------------------- waking
def wake(
    conn: Connection,
    state: repo.RunState,
    node: SleepNode | WaitNode,
    *,
    signal: waits.Signal | None = None,
    timed_out: bool = False,
) -> outbox.Entry | None:
    """Wake the waiting run at ``node`` (the caller holds the run's row lock, in the transaction
    that consumed the timer or the signal): record the node's outcome and either end the run (the
    node was its last; a wait timed out with no ``on_timeout``) or write the publication of its
    continuation, returned for the caller to publish after the commit."""
    run_id = state.run_id
    flow, _index = flow_of(state)
    agent = WAIT_AGENT if isinstance(node, WaitNode) else SLEEP_AGENT
    if timed_out and isinstance(node, WaitNode) and node.on_timeout is None:
        err = StepError.wait_timed_out(node.id, node.signal, node.timeout)
        repo.record_step(conn, run_id, node.id, agent=agent, status="failed", error=err.as_dict())
        repo.finish_run(conn, run_id, "failed", err.as_dict())
        waits.close_run_waits(conn, run_id)
        return None
    rest = continuation(flow, node.id, timed_out=timed_out)
    publication = waits.run_publication(conn, run_id) + (1 if rest else 0)
    output: dict[str, Any]
    if signal is not None:
        output = signal_output(signal, publication)
    elif timed_out:
        assert isinstance(node, WaitNode)
        output = {"signal": node.signal, "timed_out": True, "publication": publication}
    else:
        output = {"woke_at": iso_utc(datetime.now(UTC)), "publication": publication}
    repo.record_step(conn, run_id, node.id, agent=agent, status="succeeded", output=output)
    waits.set_awake(conn, run_id)
    if not rest:
        if not repo.succeed_run(conn, run_id):
            repo.finish_run(conn, run_id, "failed", StepError.deadline_exceeded().as_dict())
        return None
    kind = outbox.TIMEOUT if timed_out else outbox.WAKE
    return outbox.next_publication(conn, run_id, kind, resume=node.id)
