"""Waiting out a run store outage (``tasks/outage.py``): the clock a retried message carries, the
backoff with jitter, the budget; how an agent step goes on after the store came back (a try is
counted once, an agent is called once, its kept outcome is only written); and what a task does once
the budget is spent (its run fails with ``StoreUnavailable``). The engine parts run on the real
store; the task parts on the real worker, with the messages a retry would publish."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestration.engine.agent_step import run_agent_step
from orchestration.engine.progress import StepProgress
from orchestration.errors import StoreUnavailable
from orchestration.flows import Flow
from orchestration.store import repository as repo
from orchestration.store import sql_engine
from orchestration.store.db import autocommit
from orchestration.timefmt import iso_utc
from tasks.outage import BACKOFF_CAP, BACKOFF_FIRST, OUTAGE_KWARG, OutageClock, backoff
from tests.support.agents import ledger
from tests.support.flows import flow
from tests.support.runs import envelope, record, run_error, step_error
from tests.support.wait import eventually
from tests.support.wiring import app, registry

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)

# ------------------------------------------------------------------------------- the policy


def test_the_clock_travels_as_json_and_a_bad_one_is_no_clock() -> None:
    clock = OutageClock(NOW - timedelta(seconds=12), retries=3, reason="connection refused")
    assert OutageClock.read(json.loads(json.dumps(clock.as_json()))) == clock
    for bad in (
        None,
        "2026-12-01",
        {"since": "yesterday"},
        {"retries": 2},
        {"since": NOW.isoformat(), "retries": "x"},
    ):
        assert OutageClock.read(bad) is None, bad


def test_backoff_doubles_with_jitter_from_one_second_to_fifteen() -> None:
    rng = random.Random(7)
    delays = [[backoff(n, rng) for _ in range(200)] for n in range(8)]
    assert delays[0] == [BACKOFF_FIRST] * 200
    for n, seen in enumerate(delays[1:], start=1):
        ceiling = min(BACKOFF_CAP, BACKOFF_FIRST * 2**n)
        assert min(seen) >= ceiling / 2
        assert max(seen) <= ceiling
        assert len(set(seen)) > 100, "no jitter"
    assert max(delays[-1]) <= BACKOFF_CAP
    assert min(delays[-1]) >= BACKOFF_CAP / 2


def test_the_budget_counts_from_the_first_failure_and_no_retry_waits_past_it() -> None:
    clock = OutageClock(NOW - timedelta(seconds=299.5), retries=9)
    assert not clock.spent(NOW, 300)
    assert clock.delay(NOW, 300) == pytest.approx(0.5)
    assert clock.spent(NOW + timedelta(seconds=0.5), 300)
    fresh = OutageClock(NOW).after(ConnectionRefusedError("connection refused"))
    assert (fresh.retries, fresh.reason) == (1, "connection refused")
    assert fresh.delay(NOW, 300) == BACKOFF_FIRST


def test_store_unavailable_says_how_long_and_why_and_rebuilds_from_its_args() -> None:
    error = OutageClock(NOW - timedelta(seconds=301), 12, "the database system is starting up").unavailable(
        NOW, 300
    )
    assert str(error) == (
        "run store unavailable for 301s, past the 300s budget (CAMPAIGNFLOW_STORE_OUTAGE_SECONDS): "
        "the database system is starting up"
    )
    assert str(StoreUnavailable(*json.loads(json.dumps(error.args)))) == str(error)  # as Celery rebuilds it


def test_progress_forgets_a_try_whose_agent_may_have_died_but_keeps_a_known_outcome() -> None:
    start = repo.StepStart("running", 3, None, [{"type": "TransientAgentError", "attempt": 2}], retry_base=1)
    begun = StepProgress()
    begun.begun(start, start.attempt_errors)
    assert begun.start() == start  # as JSON, and back
    assert json.loads(json.dumps(begun.data)) == begun.data
    begun.forget_try()
    assert begun.data == {}
    called = StepProgress()
    called.begun(start, [])
    called.called({"output": {"ok": True}, "at": iso_utc(NOW)})
    called.forget_try()
    assert called.outcome == {"output": {"ok": True}, "at": iso_utc(NOW)}


# --------------------------------------------------------------- an agent step, on the store


EFFECT = [{"id": "fx", "agent": "effect"}, {"id": "after", "agent": "noop"}]


def open_run(f: Flow) -> str:
    """A run in the store whose messages were never published: each test delivers its own."""
    run_id = str(uuid.uuid4())
    with sql_engine().begin() as conn:
        repo.open_run(conn, repo.NewRun(run_id, f.name, f.version, f.snapshot, {}))
    return run_id


def begin(run_id: str, step_id: str, agent: str) -> repo.StepStart:
    """What an earlier delivery's start did before the store went away."""
    with autocommit() as conn:
        _state, start = repo.start_step(conn, run_id, step_id, agent)
    assert start is not None
    return start


def calls(run_id: str, step_id: str) -> int:
    return int(ledger().get(f"calls:{run_id}:{step_id}") or 0)


def test_a_start_whose_answer_never_came_is_taken_over_not_counted_again(clean_db: str) -> None:
    run_id = open_run(flow(EFFECT))
    begin(run_id, "fx", "effect")  # counted, and the answer lost with the connection
    progress = StepProgress({"begun": "maybe"})
    run_agent_step(run_id, "fx", spec=registry.agent("effect"), progress=progress)

    fx = record(envelope(run_id), "fx")
    assert (fx.status, fx.attempts, fx.attempt_errors) == ("succeeded", 1, [])
    assert calls(run_id, "fx") == 1


def test_without_that_mark_a_try_left_without_an_entry_is_a_lost_one(clean_db: str) -> None:
    run_id = open_run(flow(EFFECT))
    begin(run_id, "fx", "effect")  # a try whose worker went away
    run_agent_step(run_id, "fx", spec=registry.agent("effect"))

    fx = record(envelope(run_id), "fx")
    assert (fx.status, fx.attempts) == ("succeeded", 2)
    assert [(e.type, e.attempt) for e in fx.attempt_errors] == [("WorkerLost", 1)]


def test_a_begun_try_goes_on_uncounted(clean_db: str) -> None:
    run_id = open_run(flow(EFFECT))
    start = begin(run_id, "fx", "effect")
    progress = StepProgress()
    progress.begun(start, [])
    run_agent_step(run_id, "fx", spec=registry.agent("effect"), progress=StepProgress(progress.data))

    fx = record(envelope(run_id), "fx")
    assert (fx.status, fx.attempts, fx.attempt_errors) == ("succeeded", 1, [])
    assert calls(run_id, "fx") == 1


def kept(start: repo.StepStart, outcome: dict[str, Any]) -> dict[str, Any]:
    """The progress a delivery leaves when the agent returned and the store had gone."""
    progress = StepProgress()
    progress.begun(start, [])
    progress.called(outcome)
    return progress.data


def test_a_kept_failure_is_written_as_the_try_it_was(clean_db: str) -> None:
    run_id = open_run(flow(EFFECT))
    start = begin(run_id, "fx", "effect")
    error = {"type": "TransientAgentError", "message": "flaky (attempt 1)", "attempt": 1}
    outcome = run_agent_step(
        run_id,
        "fx",
        spec=registry.agent("effect"),
        progress=StepProgress(kept(start, {"error": error, "retryable": True})),
    )

    fx = record(envelope(run_id), "fx")
    assert outcome.action.value == "retry"
    assert (fx.status, fx.attempts) == ("pending", 1)
    assert [(e.type, e.attempt) for e in fx.attempt_errors] == [("TransientAgentError", 1)]
    assert calls(run_id, "fx") == 0


# ------------------------------------------------------------------ the tasks, on the worker


def deliver(task: str, **kwargs: Any) -> None:
    app.signature(task, kwargs=kwargs).apply_async()


def clock(seconds_ago: float) -> dict[str, Any]:
    since = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    return OutageClock(since, 4, "connection refused").as_json()


def test_a_retried_agent_step_writes_its_kept_outcome_without_calling_the_agent(worker: object) -> None:
    run_id = open_run(flow(EFFECT))
    start = begin(run_id, "fx", "effect")
    output = {"key": f"{run_id}:fx", "effects": 1}
    at = iso_utc(datetime.now(UTC))
    progress = kept(start, {"output": output, "at": at})
    deliver(
        "campaignflow.agent.effect",
        run_id=run_id,
        step_id="fx",
        progress=progress,
        **{OUTAGE_KWARG: clock(20)},
    )

    def written() -> Any:
        fx = record(envelope(run_id), "fx")
        assert fx.status == "succeeded", fx.status
        return fx

    fx = eventually(written, 30, "the kept outcome to be written")
    assert (fx.output, fx.attempts, fx.attempt_errors) == (output, 1, [])
    assert calls(run_id, "fx") == 0


def test_past_the_budget_an_agent_step_fails_its_run_with_store_unavailable_keeping_its_output(
    worker: object,
) -> None:
    run_id = open_run(flow(EFFECT))
    start = begin(run_id, "fx", "effect")
    output = {"key": f"{run_id}:fx", "effects": 1}
    progress = kept(start, {"output": output, "at": iso_utc(datetime.now(UTC))})
    deliver(
        "campaignflow.agent.effect",
        run_id=run_id,
        step_id="fx",
        progress=progress,
        **{OUTAGE_KWARG: clock(400)},
    )

    def failed() -> Any:
        env = envelope(run_id)
        assert env.status == "failed", env.status
        return env

    env = eventually(failed, 30, "the run to fail")
    error = run_error(env)
    assert (error.type, error.step_id) == ("StoreUnavailable", "fx")
    assert error.message.startswith("run store unavailable for 40")
    assert error.message.endswith("budget (CAMPAIGNFLOW_STORE_OUTAGE_SECONDS): connection refused")
    fx = record(env, "fx")
    assert (fx.status, fx.output) == ("succeeded", output)  # the agent's side effect is not hidden
    assert calls(run_id, "fx") == 0


def test_past_the_budget_a_join_fails_its_run_with_store_unavailable(worker: object) -> None:
    f = flow([{"kind": "parallel", "id": "fan", "members": [{"id": "a", "agent": "noop"}]}])
    run_id = open_run(f)
    begin(run_id, "a", "noop")
    deliver("campaignflow.engine.join", run_id=run_id, node_id="fan", **{OUTAGE_KWARG: clock(301)})

    def failed() -> Any:
        env = envelope(run_id)
        assert env.status == "failed", env.status
        return env

    env = eventually(failed, 30, "the run to fail")
    assert (run_error(env).type, run_error(env).step_id) == ("StoreUnavailable", "fan")
    assert step_error(record(env, "a")).type == "StoreUnavailable"  # nothing stays open
