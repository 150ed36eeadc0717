"""Waiting for runs to end, reading envelopes."""

from __future__ import annotations

from typing import Any

from orchestration.envelope import Envelope, StepError, StepRecord
from orchestration.store import repository as repo
from orchestration.store import sql_engine
from tests.support.wait import eventually


def envelope(run_id: str) -> Envelope:
    with sql_engine().connect() as conn:
        return repo.get_envelope(conn, run_id)


def wait_for_run(run_id: str, timeout: float = 30.0) -> Envelope:
    """Poll the store until the run is terminal; fail with the last envelope otherwise."""

    def terminal() -> Envelope:
        env = envelope(run_id)
        assert env.terminal, f"still {env.status}: {env.model_dump_json()}"
        return env

    return eventually(terminal, timeout, f"run {run_id} to end")


def record(env: Envelope, step_id: str) -> StepRecord:
    """The record of ``step_id``; fails with the whole envelope when there is none."""
    found = env.record(step_id)
    assert found is not None, f"no record {step_id!r}: {env.model_dump_json(indent=2)}"
    return found


def run_error(env: Envelope) -> StepError:
    """The run's error; fails with the whole envelope when it has none."""
    found = env.metadata.error
    assert found is not None, f"run {env.run_id} has no error: {env.model_dump_json(indent=2)}"
    return found


def step_error(rec: StepRecord) -> StepError:
    """The error of one step record; fails with the record when it has none."""
    found = rec.error
    assert found is not None, f"step {rec.step_id!r} has no error: {rec.model_dump_json(indent=2)}"
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
                "input": r.input,
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
    return {
        "flow": env.flow,
        "status": env.status,
        "records": records,
        "payload": env.metadata.payload,
        "error": (error.type, error.step_id) if error else None,
    }
