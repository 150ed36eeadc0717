"""The same flow inline (in the caller's process) and async (on the workers) leaves the same envelope."""

from __future__ import annotations

from typing import Any

from tests.support.flows import flow, run
from tests.support.runs import comparable, run_error

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


def test_inline_and_async_envelopes_are_the_same(worker: object) -> None:
    f = flow(STEPS, name="parity")
    payload = {"v": 3, "xs": [{"k": 1}, {"k": 2}, {"k": 3}]}
    inline = run(f, payload, mode="inline")
    remote = run(f, payload, mode="async")
    assert inline.metadata.mode == "inline"
    assert remote.metadata.mode == "async"
    assert inline.status == "succeeded"
    assert comparable(inline) == comparable(remote)
    inputs = {r["step_id"]: r["input"] for r in comparable(inline)["records"]}
    assert (inputs["a"], inputs["m[1]"], inputs["fan"]) == ({"v": 3}, {"k": 2}, None)
    assert inputs["p2"] == {"message": "failing on purpose", "permanent": False, "fail_attempts": 1}
    assert inputs["zb"] == {"v": 3, "xs": payload["xs"]}  # no input declared: the whole payload
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
