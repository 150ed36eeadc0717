"""A try whose process dies (``os._exit``, a segfault) counts against the step's retry policy and is
recorded with its cause; when the tries are spent the step fails, and the run with it, or its
fallback runs. Real ``celery worker`` subprocesses (prefork) serve the ``agents.isolated`` queue."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from orchestration.envelope import Envelope, StepRecord
from tests.support.agents import ISOLATED_QUEUE, ledger
from tests.support.flows import flow, run, statuses
from tests.support.runs import record, run_error, step_error
from tests.support.workers import WorkerProcess, prefork_worker

pytestmark = pytest.mark.crash


@pytest.fixture(scope="module")
def isolated(
    celery_worker_session: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """One prefork worker (one pool child) on the isolated queue for this module, killed at the end."""
    with prefork_worker("lost", [ISOLATED_QUEUE], tmp_path_factory.mktemp("lost")) as proc:
        yield proc


def calls(env: Envelope, step_id: str) -> int:
    return int(ledger().get(f"calls:{env.run_id}:{step_id}") or 0)


def lost_messages(rec: StepRecord) -> list[tuple[str, str, int | None]]:
    return [(e.type, e.message, e.attempt) for e in rec.attempt_errors]


def test_a_step_whose_process_exits_fails_after_its_tries(worker: object, isolated: WorkerProcess) -> None:
    f = flow([{"id": "crash", "agent": "crash_isolated"}, {"id": "never", "agent": "noop"}])
    env = run(f, timeout=60)

    crash = record(env, "crash")
    assert env.status == "failed", isolated.log()
    assert (crash.status, crash.attempts) == ("failed", 3)  # the policy's max_attempts, not 4
    assert lost_messages(crash) == [("WorkerLost", "worker lost: exit code 13", n) for n in (1, 2, 3)]
    assert step_error(crash).message == "worker lost: exit code 13"
    assert run_error(env).step_id == "crash"
    assert calls(env, "crash") == 3  # the start that found the tries spent called no agent
    assert "never" not in statuses(env)


def test_a_segfault_counts_as_a_try_and_the_next_one_may_succeed(
    worker: object, isolated: WorkerProcess
) -> None:
    f = flow(
        [
            {"id": "crash", "agent": "crash_isolated", "input": {"crash_attempts": 2, "signal": 11}},
            {"id": "after", "agent": "noop"},
        ]
    )
    env = run(f, timeout=60)

    crash = record(env, "crash")
    assert env.status == "succeeded", isolated.log()
    assert (crash.status, crash.attempts, crash.output) == ("succeeded", 3, {"attempt": 3})
    assert crash.input == {"crash_attempts": 2, "exit_code": 13, "signal": 11}  # one record, its input
    sigsegv = f"worker lost: signal {int(signal.SIGSEGV)} (SIGSEGV)"
    assert lost_messages(crash) == [("WorkerLost", sigsegv, 1), ("WorkerLost", sigsegv, 2)]
    assert statuses(env) == {"crash": "succeeded", "after": "succeeded"}


def test_when_the_tries_are_spent_the_fallback_runs(worker: object, isolated: WorkerProcess) -> None:
    f = flow(
        [
            {
                "id": "crash",
                "agent": "crash_isolated",
                "retry": {"max_attempts": 2, "backoff_seconds": 0.05, "jitter": False},
                "fallback": {"id": "plan_b", "agent": "noop"},
            },
            {"id": "after", "agent": "noop"},
        ]
    )
    env = run(f, timeout=60)

    assert env.status == "succeeded", isolated.log()
    assert statuses(env) == {"crash": "failed", "plan_b": "succeeded", "after": "succeeded"}
    crash = record(env, "crash")
    assert crash.attempts == 2
    assert [e.attempt for e in crash.attempt_errors] == [1, 2]
