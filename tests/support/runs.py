"""Waiting for runs to end, reading envelopes."""

from __future__ import annotations

import time
from typing import Any

from orchestration.envelope import Envelope, StepRecord
from orchestration.store import get_engine
from orchestration.store import repository as repo


def envelope(run_id: str) -> Envelope:
    with get_engine().connect() as conn:
        return repo.get_envelope(conn, run_id)


def wait_for_run(run_id: str, timeout: float = 30.0) -> Envelope:
    """Poll the store until the run is terminal; fail with the last envelope otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        env = envelope(run_id)
        if env.terminal:
            return env
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {env.status} after {timeout}s: {env.model_dump_json()}")
        time.sleep(0.05)


def record(env: Envelope, step_id: str) -> StepRecord:
    """The record of ``step_id``; fails with the whole envelope when there is none."""
    found = env.record(step_id)
    assert found is not None, f"no record {step_id!r}: {env.model_dump_json(indent=2)}"
    return found


def comparable(env: Envelope) -> dict[str, Any]:
    """The envelope without ids, timings and run mode: what inline and async runs must share."""
    records = sorted(
        (
            {
                "step_id": r.step_id,
                "agent": r.agent,
                "status": r.status,
                "attempts": r.attempts,
                "output": r.output,
                "error": r.error.type if r.error else None,
                "attempt_errors": [(e.type, e.attempt) for e in r.attempt_errors],
                "note": r.note,
            }
            for r in env.records
        ),
        key=lambda r: r["step_id"],
    )
    error = env.metadata.error
    run_error = (error.type, error.step_id) if error else None
    return {
        "flow": env.flow,
        "status": env.status,
        "records": records,
        "payload": env.metadata.payload,
        "error": run_error,
    }
