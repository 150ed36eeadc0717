"""Running ad-hoc flows (defined in the test) on the real workers or inline."""

from __future__ import annotations

from typing import Any

from orchestration.envelope import Envelope
from orchestration.flows import Flow, parse_flow
from orchestration.orchestrators.base import FlowRunner, Mode
from tests.support.runs import envelope, wait_for_run
from tests.support.wiring import engine, registry


def flow(steps: list[dict[str, Any]], name: str = "test-flow", **extra: Any) -> Flow:
    return parse_flow({"name": name, "steps": steps, **extra}, registry)


def run(
    f: Flow, payload: dict[str, Any] | None = None, *, mode: Mode = "async", timeout: float = 60.0
) -> Envelope:
    handle = FlowRunner(engine(), f).run(payload or {}, mode=mode)
    return wait_for_run(handle.run_id, timeout) if mode == "async" else envelope(handle.run_id)


def statuses(env: Envelope) -> dict[str, str]:
    return {r.step_id: r.status for r in env.records}
