"""Signals: resume a run's ``wait`` by name (``campaignflow runs signal``, ``runs approve``, the
public task ``campaignflow.signal_run``, the client, correlated events).

A signal is kept in the store (``run_signal``) keyed by its ``signal_id``: the same id twice is one
signal. When the run waits for that name, the signal wakes it in the same transaction (the wait's
record gets the signal's data as its output, the continuation's publication goes into the outbox)
and the continuation is published after the commit; otherwise it stays until the wait starts,
which takes it at once. A finished run, an unknown run or a name the flow never waits for is a
clear error.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any

from orchestration.control import bodies
from orchestration.control.run_control import RunStateError
from orchestration.engine import waits as engine_waits
from orchestration.engine.context import flow_of
from orchestration.engine.publish import publish_committed
from orchestration.errors import FieldError, RunNotFoundError
from orchestration.flows.model import Flow, WaitNode
from orchestration.names import TERMINAL_RUN_STATUSES, RunStatus
from orchestration.runtime import current
from orchestration.settings import get_settings
from orchestration.store import outbox, sql_engine, waits
from orchestration.store import repository as repo

#: The signal ``runs approve`` sends; its data carries ``by`` and ``comment``.
APPROVAL = "approval"


@dataclass(frozen=True)
class SignalResult:
    run_id: str
    signal: str
    signal_id: str
    #: The run's status afterwards (``running`` when the signal woke it).
    status: str
    #: True when a signal with this ``signal_id`` had already been received (nothing changed).
    duplicate: bool
    #: True when it resumed a wait; False when it is kept until the wait starts.
    resumed: bool

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "error": None}


def waited_signals(flow: Flow) -> list[str]:
    """The signal names the flow's ``wait`` nodes wait for."""
    return sorted({node.signal for node in flow.walk() if isinstance(node, WaitNode)})


def signal_run(run_id: str, signal: str, data: Any = None, signal_id: str | None = None) -> SignalResult:
    """Send ``signal`` (with JSON ``data``) to the run; see the module's docstring."""
    signal_id = signal_id or uuid.uuid4().hex
    if not isinstance(signal, str) or not signal:
        raise FieldError(["signal: give the name of the signal the run waits for"], subject="signal")
    problems = bodies.body_problems({"data": data}, max_bytes=get_settings().max_event_bytes)
    if problems:  # what a database cannot hold, or too large: refused before anything is written
        raise FieldError([p.replace("event:", "data:", 1) for p in problems], subject="signal")
    entry: outbox.Entry | None = None
    with sql_engine().begin() as conn:
        row = repo.lock_run(conn, run_id)
        if row is None:
            raise RunNotFoundError(run_id)
        if waits.has_signal(conn, run_id, signal_id):  # the same signal again: already taken
            return SignalResult(run_id, signal, signal_id, str(row.status), duplicate=True, resumed=False)
        if row.status in TERMINAL_RUN_STATUSES:
            raise RunStateError(f"run {run_id} is {row.status}; a signal goes to a run that has not ended")
        state = repo.load_state(conn, run_id)
        flow, index = flow_of(state)
        names = waited_signals(flow)
        if signal not in names:
            waited = ", ".join(names) or "none"
            raise FieldError(
                [
                    f"signal: flow {flow.name!r} waits for no signal {signal!r} "
                    f"(it waits for: {waited}); check the name"
                ],
                subject="signal",
            )
        if not waits.add_signal(conn, run_id, signal_id, signal, data):
            return SignalResult(run_id, signal, signal_id, str(row.status), duplicate=True, resumed=False)
        wait = waits.open_wait_of(conn, run_id, signal=signal) if row.status == RunStatus.WAITING else None
        if wait is None:
            return SignalResult(run_id, signal, signal_id, str(row.status), duplicate=False, resumed=False)
        kept = waits.consume_signal(conn, run_id, signal, wait.node_id)
        waits.close_wait(conn, wait.id, "signalled")
        waits.close_timers(conn, run_id, wait.node_id)
        node = index[wait.node_id]
        assert isinstance(node, WaitNode)
        entry = engine_waits.wake(conn, state, node, signal=kept)
        status = repo.run_status(conn, run_id)
    if entry is not None:
        publish_committed(current().engine, [entry])
    return SignalResult(run_id, signal, signal_id, status, duplicate=False, resumed=True)


def approve(
    run_id: str, by: str | None = None, comment: str | None = None, signal_id: str | None = None
) -> SignalResult:
    """Send the ``approval`` signal, its data ``{"by", "comment"}``."""
    return signal_run(run_id, APPROVAL, {"by": by, "comment": comment}, signal_id)
