"""Time limits and deadlines: a run's deadline bounds its running step (its limits are capped by the
time left when it starts), a step that ends past the deadline never turns the run ``succeeded``, and
inline runs enforce the same limits as the workers, leaving the same envelope. The workers' limits
need a prefork pool: a ``celery worker`` subprocess serves the ``agents.isolated`` queue."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from orchestration.envelope import Envelope
from orchestration.names import NOTE_AFTER_DEADLINE
from tests.support.agents import ISOLATED_QUEUE
from tests.support.flows import flow, run, statuses
from tests.support.runs import comparable, record, run_error, step_error
from tests.support.workers import WorkerProcess, prefork_worker

pytestmark = pytest.mark.crash


@pytest.fixture(scope="module")
def isolated(
    celery_worker_session: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """One prefork worker on the isolated queue for this module (it enforces time limits)."""
    with prefork_worker("limits", [ISOLATED_QUEUE], tmp_path_factory.mktemp("limits")) as proc:
        yield proc


def seconds_past_deadline(env: Envelope) -> float:
    meta = env.metadata
    assert meta.finished_at is not None
    assert meta.deadline_at is not None
    return (meta.finished_at - meta.deadline_at).total_seconds()


def test_a_step_that_ends_past_the_deadline_does_not_end_the_run_succeeded(worker: object) -> None:
    # the in-process worker uses threads, which enforce no time limit: the step runs to its end
    f = flow([{"id": "nap", "agent": "sleep", "input": {"seconds": 2}}], deadline_seconds=1)
    env = run(f, timeout=30)

    nap = record(env, "nap")
    assert env.status == "failed", env.model_dump_json(indent=2)
    assert (run_error(env).type, run_error(env).step_id) == ("DeadlineExceeded", "nap")
    # what the step did is kept as it was, with a note: never hidden
    assert (nap.status, nap.output, nap.note) == ("succeeded", {"slept": 2.0}, NOTE_AFTER_DEADLINE)


DEADLINED: list[dict[str, Any]] = [
    {"id": "quick", "agent": "sleep_isolated", "input": {"seconds": 0.3}},
    {"id": "long", "agent": "sleep_isolated", "input": {"seconds": 8}},
    {"id": "never", "agent": "noop"},
]


def test_the_deadline_caps_the_running_step_on_the_workers(worker: object, isolated: WorkerProcess) -> None:
    env = run(flow(DEADLINED, name="deadlined", deadline_seconds=2), timeout=30)

    long = record(env, "long")
    assert env.status == "failed", isolated.log()
    assert (run_error(env).type, run_error(env).step_id) == ("DeadlineExceeded", "long")
    assert long.status == "failed"
    assert step_error(long).type == "DeadlineExceeded"
    assert [e.type for e in long.attempt_errors] == ["SoftTimeLimitExceeded"]  # no retry past it
    assert seconds_past_deadline(env) < 2.0  # the 8 s step was stopped at the deadline
    assert statuses(env) == {"quick": "succeeded", "long": "failed"}


def test_inline_caps_the_running_step_by_the_deadline_too(worker: object, isolated: WorkerProcess) -> None:
    f = flow(DEADLINED, name="deadlined", deadline_seconds=2)
    inline, remote = run(f, mode="inline"), run(f, timeout=30)

    assert seconds_past_deadline(inline) < 2.0
    assert comparable(inline) == comparable(remote), isolated.log()


def test_inline_enforces_the_soft_limit_like_the_workers(worker: object, isolated: WorkerProcess) -> None:
    f = flow(
        [
            {
                "id": "slow",
                "agent": "sleep_isolated",
                "input": {"seconds": 6},
                "soft_time_limit": 1,
                "time_limit": 3,
                "retry": {"max_attempts": 2, "backoff_seconds": 0.05, "jitter": False},
            },
            {"id": "never", "agent": "noop"},
        ],
        name="soft-limited",
    )
    inline, remote = run(f, mode="inline"), run(f, timeout=60)

    assert inline.status == "failed", inline.model_dump_json(indent=2)
    slow = record(inline, "slow")
    assert [(e.type, e.attempt) for e in slow.attempt_errors] == [
        ("SoftTimeLimitExceeded", 1),
        ("SoftTimeLimitExceeded", 2),
    ]
    assert comparable(inline) == comparable(remote), isolated.log()


def test_inline_enforces_the_hard_limit_like_the_workers(worker: object, isolated: WorkerProcess) -> None:
    # the agent swallows its soft limit (1 s): only the hard one (2 s) stops it
    f = flow([{"id": "stuck", "agent": "stubborn_isolated", "input": {"seconds": 10}}], name="hard-limited")
    inline, remote = run(f, mode="inline"), run(f, timeout=60)

    assert inline.status == "failed"
    assert run_error(inline).type == "TimeLimitExceeded"
    assert comparable(inline) == comparable(remote), isolated.log()
    assert run_error(inline).message == run_error(remote).message == "hard time limit (2s) exceeded"
