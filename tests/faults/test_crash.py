"""Crash tests with real `celery worker` subprocesses: a worker SIGKILLed in the middle of a step,
and per-step time limits enforced by the prefork pool."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestration.orchestrators.base import FlowRunner
from tests.support.agents import ISOLATED_QUEUE, ledger
from tests.support.flows import flow, run, statuses
from tests.support.runs import record, run_error, wait_for_run
from tests.support.wait import eventually
from tests.support.wiring import engine
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.crash


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for w in started:
        w.kill()


def _isolated(workers: list[WorkerProcess], name: str, tmp_path: Path, concurrency: int = 1) -> WorkerProcess:
    w = WorkerProcess(name, [ISOLATED_QUEUE], concurrency=concurrency, log_dir=tmp_path).start()
    workers.append(w)
    w.wait_ready()
    return w


def test_worker_killed_mid_step_run_completes_and_effect_happens_once(
    worker: object, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    first = _isolated(workers, "crash1", tmp_path)
    f = flow(
        [
            {"id": "a", "agent": "noop"},
            {"id": "fx", "agent": "effect_isolated", "input": {"sleep_after": 3}},
            {"id": "b", "agent": "noop"},
        ]
    )
    handle = FlowRunner(engine(), f).run({}, mode="async")

    def effect_done() -> bool:
        assert ledger().get(f"effects:{handle.run_id}"), f"no effect yet; worker log:\n{first.log()}"
        return True

    eventually(effect_done, 30, "the effect of fx")  # the effect happened; the ack has not
    first.kill()

    _isolated(workers, "crash2", tmp_path)
    env = wait_for_run(handle.run_id, timeout=60)

    assert env.status == "succeeded", env.model_dump_json(indent=2)
    assert [r.step_id for r in env.records] == ["a", "fx", "b"]
    assert record(env, "fx").attempts == 2  # the redelivered message counted as a second try
    assert record(env, "fx").input == {"sleep": 0.0, "sleep_after": 3.0, "fail_first": 0}
    assert int(ledger().get(f"calls:{handle.run_id}:fx") or 0) == 2
    assert int(ledger().get(f"effects:{handle.run_id}") or 0) == 1


def test_soft_time_limit_from_the_flow_retries_then_fails_the_run(
    worker: object, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    _isolated(workers, "limits1", tmp_path)
    f = flow(
        [
            {
                "id": "slow",
                "agent": "sleep_isolated",
                "input": {"seconds": 5},
                "soft_time_limit": 0.5,
                "time_limit": 3,
            },
            {"id": "never", "agent": "noop"},
        ]
    )
    env = run(f, timeout=60)
    rec = record(env, "slow")
    assert env.status == "failed"
    assert rec.status == "failed"
    assert rec.attempts == 2
    assert [e.type for e in rec.attempt_errors] == ["SoftTimeLimitExceeded", "SoftTimeLimitExceeded"]
    assert run_error(env).step_id == "slow"
    assert "never" not in statuses(env)


def test_hard_time_limit_kills_the_step_and_the_errback_ends_the_run(
    worker: object, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    _isolated(workers, "limits2", tmp_path)
    f = flow(
        [
            {"id": "stuck", "agent": "stubborn_isolated", "input": {"seconds": 10}},
            {"id": "never", "agent": "noop"},
        ]
    )
    env = run(f, timeout=60)
    assert env.status == "failed"
    assert run_error(env).type == "TimeLimitExceeded"
    assert run_error(env).step_id == "stuck"
    assert record(env, "stuck").status == "failed"
