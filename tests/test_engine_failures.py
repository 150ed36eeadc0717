"""Failure semantics: every run ends terminal, with the failing step's error in the envelope."""

from __future__ import annotations

from orchestration.envelope import Envelope
from orchestration.orchestrators.base import FlowRunner
from tests.support.agents import ledger
from tests.support.flows import flow, run, statuses
from tests.support.runs import envelope, record, run_error, step_error, wait_for_run
from tests.support.wait import eventually
from tests.support.wiring import app, engine


def test_failing_parallel_member_fails_the_run_once_without_hanging(worker: object) -> None:
    f = flow(
        [
            {
                "kind": "parallel",
                "id": "fan",
                "members": [
                    {"id": "ok1", "agent": "noop"},
                    {"id": "bad", "agent": "fail", "input": {"permanent": True, "message": "member broke"}},
                    {"id": "ok2", "agent": "sleep", "input": {"seconds": 0.2}},
                ],
            },
            {"id": "never", "agent": "noop"},
        ]
    )
    env = run(f)
    assert env.status == "failed"
    assert "member broke" in run_error(env).message
    # the run fails fast; a member already running finishes and records its own outcome
    run_id = env.run_id

    def settled() -> Envelope:
        current = envelope(run_id)
        assert "running" not in statuses(current).values(), statuses(current)
        return current

    env = eventually(settled, 10, "the members already running to record their outcome")
    assert env.status == "failed"
    st = statuses(env)
    assert st["bad"] == "failed"
    # a member that started before the failure records its outcome; one still queued stops at the
    # gate without running
    assert st.get("ok1", "succeeded") == "succeeded"
    assert st.get("ok2", "succeeded") == "succeeded"
    assert "fan" not in st
    assert "never" not in st
    assert record(env, "bad").attempts == 1  # permanent: no retry


def test_retries_exhausted_records_every_attempt(worker: object) -> None:
    f = flow(
        [
            {
                "id": "flaky",
                "agent": "fail",
                "input": {"message": "upstream 503"},
                "retry": {"max_attempts": 3, "backoff_seconds": 0.05, "jitter": False},
            }
        ]
    )
    env = run(f)
    rec = record(env, "flaky")
    assert env.status == "failed"
    assert rec.status == "failed"
    assert rec.attempts == 3
    assert [e.attempt for e in rec.attempt_errors] == [1, 2, 3]
    assert all(e.type == "TransientAgentError" for e in rec.attempt_errors)
    assert run_error(env).message == "upstream 503 (attempt 3)"


def test_retry_then_success(worker: object) -> None:
    f = flow(
        [
            {
                "id": "flaky",
                "agent": "fail",
                "input": {"fail_attempts": 2},
                "retry": {"max_attempts": 4, "backoff_seconds": 0.05, "jitter": False},
            }
        ]
    )
    env = run(f)
    rec = record(env, "flaky")
    assert env.status == "succeeded"
    assert rec.attempts == 3
    assert rec.output == {"attempt": 3}
    assert len(rec.attempt_errors) == 2


def test_non_retryable_error_fails_at_once(worker: object) -> None:
    declared = flow(
        [{"id": "x", "agent": "fail", "retry": {"max_attempts": 5, "non_retryable": ["TransientAgentError"]}}]
    )
    bad_input = flow([{"id": "y", "agent": "sleep", "input": {"seconds": "not a number"}}])
    env1, env2 = run(declared), run(bad_input)
    assert env1.status == "failed"
    assert record(env1, "x").attempts == 1
    assert env2.status == "failed"
    assert step_error(record(env2, "y")).type == "ValidationError"
    assert "seconds" in step_error(record(env2, "y")).message


def test_on_error_continue_records_and_goes_on(worker: object) -> None:
    f = flow(
        [
            {"id": "opt", "agent": "fail", "input": {"permanent": True}, "on_error": "continue"},
            {"id": "next", "agent": "noop"},
        ]
    )
    env = run(f)
    assert env.status == "succeeded"
    assert statuses(env) == {"opt": "failed", "next": "succeeded"}


def test_on_error_fallback_runs_the_fallback_step(worker: object) -> None:
    f = flow(
        [
            {
                "id": "primary",
                "agent": "fail",
                "input": {"permanent": True},
                "fallback": {"id": "backup", "agent": "noop", "input": {"via": "backup"}},
            },
            {"id": "next", "agent": "noop", "input": {"b": "$steps.backup.echo.via"}},
        ]
    )
    env = run(f)
    assert env.status == "succeeded", env.metadata.error
    assert statuses(env) == {"primary": "failed", "backup": "succeeded", "next": "succeeded"}
    assert record(env, "next").output["echo"] == {"b": "backup"}


def test_fallback_in_a_parallel_member_and_as_last_step(worker: object) -> None:
    f = flow(
        [
            {
                "kind": "parallel",
                "id": "fan",
                "members": [
                    {
                        "id": "m1",
                        "agent": "fail",
                        "input": {"permanent": True},
                        "fallback": {"id": "m1b", "agent": "noop"},
                    },
                    {"id": "m2", "agent": "noop"},
                ],
            },
            {
                "id": "last",
                "agent": "fail",
                "input": {"permanent": True},
                "fallback": {"id": "lastb", "agent": "noop"},
            },
        ]
    )
    env = run(f)
    assert env.status == "succeeded", env.metadata.error
    assert statuses(env) == {
        "m1": "failed",
        "m1b": "succeeded",
        "m2": "succeeded",
        "fan": "succeeded",
        "last": "failed",
        "lastb": "succeeded",
    }


def test_run_deadline_fails_the_run_with_a_reason(worker: object) -> None:
    f = flow(
        [{"id": "slow", "agent": "sleep", "input": {"seconds": 1.2}}, {"id": "late", "agent": "noop"}],
        deadline_seconds=1,
    )
    env = run(f)
    assert env.status == "failed"
    assert run_error(env).type == "DeadlineExceeded"
    assert "late" not in statuses(env)


def _wait_status(run_id: str, step_id: str, status: str) -> None:
    def reached() -> bool:
        rec = envelope(run_id).record(step_id)
        assert rec is not None, f"no record of {step_id} yet"
        assert rec.status == status, f"{step_id} is {rec.status}"
        return True

    eventually(reached, 15, f"{step_id} to be {status}")


def _send_step(run_id: str, step_id: str) -> None:
    app.send_task("campaignflow.agent.effect", kwargs={"run_id": run_id, "step_id": step_id}).get(timeout=15)


def test_redelivered_step_updates_one_record_and_repeats_no_side_effect(worker: object) -> None:
    f = flow([{"id": "fx", "agent": "effect"}, {"id": "hold", "agent": "sleep", "input": {"seconds": 1.5}}])
    handle = FlowRunner(engine(), f).run({}, mode="async")
    _wait_status(handle.run_id, "fx", "succeeded")
    # the same step message, delivered twice more while the run is live (as after a lost ack)
    _send_step(handle.run_id, "fx")
    _send_step(handle.run_id, "fx")
    env = wait_for_run(handle.run_id)
    assert env.status == "succeeded"
    assert [r.step_id for r in env.records] == ["fx", "hold"]
    assert record(env, "fx").attempts == 1
    assert int(ledger().get(f"effects:{env.run_id}") or 0) == 1
    assert int(ledger().get(f"calls:{env.run_id}:fx") or 0) == 1


def test_copies_of_a_step_running_at_once_make_one_record_and_one_effect(worker: object) -> None:
    f = flow(
        [
            {"id": "hold", "agent": "sleep", "input": {"seconds": 1.0}},
            {"id": "fx", "agent": "effect", "input": {"sleep": 0.3}},
        ]
    )
    handle = FlowRunner(engine(), f).run({}, mode="async")
    _wait_status(handle.run_id, "hold", "running")
    copies = [
        app.send_task("campaignflow.agent.effect", kwargs={"run_id": handle.run_id, "step_id": "fx"})
        for _ in range(3)
    ]
    for copy in copies:
        copy.get(timeout=15)
    env = wait_for_run(handle.run_id)
    assert env.status == "succeeded"
    assert [r.step_id for r in env.records].count("fx") == 1
    assert int(ledger().get(f"effects:{env.run_id}") or 0) == 1
    # the copies ran the agent at once (the guard is the idempotency key); the chain's own message came later
    assert int(ledger().get(f"calls:{env.run_id}:fx") or 0) == 3
