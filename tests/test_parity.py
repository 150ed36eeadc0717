"""The same flow inline (in the caller's process) and async (on the workers) leaves the same envelope."""

from __future__ import annotations

from typing import Any

from orchestration.envelope import Envelope
from tests.support.flows import flow, run
from tests.support.runs import run_error

STEPS: list[dict[str, Any]] = [
    {"id": "a", "agent": "noop", "input": {"v": "$payload.v"}},
    {
        "kind": "parallel",
        "id": "fan",
        "members": [
            {"id": "p1", "agent": "noop"},
            {
                "kind": "sequence",
                "steps": [
                    {
                        "id": "p2",
                        "agent": "fail",
                        "input": {"fail_attempts": 1},
                        "retry": {"max_attempts": 2, "backoff_seconds": 0.01, "jitter": False},
                    },
                    {
                        "kind": "branch",
                        "id": "pick",
                        "cases": [
                            {
                                "when": {"field": "steps.a.echo.v", "op": "gt", "value": 1},
                                "then": {"id": "hi", "agent": "noop"},
                            }
                        ],
                        "else": {"id": "lo", "agent": "noop"},
                    },
                ],
            },
        ],
    },
    {
        "kind": "map",
        "id": "m",
        "over": "$payload.xs",
        "concurrency": 2,
        "do": {"id": "item", "agent": "noop"},
    },
    {"id": "opt", "agent": "fail", "input": {"permanent": True}, "on_error": "continue"},
    {"id": "z", "agent": "fail", "input": {"permanent": True}, "fallback": {"id": "zb", "agent": "noop"}},
]


def comparable(env: Envelope) -> dict[str, Any]:
    """The envelope without ids, timings and run mode."""
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
            }
            for r in env.records
        ),
        key=lambda r: r["step_id"],
    )
    return {"flow": env.flow, "status": env.status, "records": records, "payload": env.metadata.payload}


def test_inline_and_async_envelopes_are_the_same(worker: object) -> None:
    f = flow(STEPS, name="parity")
    payload = {"v": 3, "xs": [{"k": 1}, {"k": 2}, {"k": 3}]}
    inline = run(f, payload, mode="inline")
    remote = run(f, payload, mode="async")
    assert inline.metadata.mode == "inline"
    assert remote.metadata.mode == "async"
    assert inline.status == "succeeded"
    assert comparable(inline) == comparable(remote)
    assert {r["step_id"] for r in comparable(inline)["records"]} == {
        "a",
        "p1",
        "p2",
        "pick",
        "hi",
        "lo",
        "fan",
        "m",
        "m[0]",
        "m[1]",
        "m[2]",
        "opt",
        "z",
        "zb",
    }


def test_inline_failure_matches_async_failure(worker: object) -> None:
    f = flow(
        [
            {"id": "a", "agent": "noop"},
            {"id": "b", "agent": "fail", "input": {"permanent": True}},
            {"id": "c", "agent": "noop"},
        ],
        name="parity-fail",
    )
    inline, remote = run(f, mode="inline"), run(f, mode="async")
    assert inline.status == remote.status == "failed"
    assert comparable(inline) == comparable(remote)
    assert inline.metadata.error is not None
    assert remote.metadata.error is not None
    assert run_error(inline).step_id == run_error(remote).step_id == "b"
    assert run_error(inline).message == run_error(remote).message
