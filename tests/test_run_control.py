"""Run control: retry re-drives a failed run from its failed step (optionally with a corrected
payload); cancel stops a queued or running run and no further step runs."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from celery.signals import task_postrun
from typer.testing import CliRunner

from orchestration.cli.main import cli
from orchestration.control import run_control as control
from orchestration.engine import nodes
from orchestration.envelope import Envelope
from orchestration.errors import FieldError, RunNotFoundError, StepFailedError
from orchestration.flows import Flow, parse_flow
from orchestration.names import FAIL_RUN_TASK
from orchestration.orchestrators.base import FlowRunner
from orchestration.store import repository as repo
from orchestration.store import sql_engine
from tests.support.agents import ledger
from tests.support.runs import envelope, record, run_error, step_error, wait_for_run
from tests.support.wait import eventually
from tests.support.wiring import app, engine, registry

FLAKY = {
    "name": "control-flaky",
    "input_required": ["fail_attempts"],
    "steps": [
        {"id": "a", "agent": "effect"},
        {"id": "b", "agent": "fail", "input": {"permanent": True, "fail_attempts": "$payload.fail_attempts"}},
        {"id": "c", "agent": "effect"},
    ],
}
MAPPED = {
    "name": "control-mapped",
    "steps": [
        {
            "kind": "map",
            "id": "m",
            "over": "$payload.xs",
            "concurrency": 2,
            "do": {"id": "nap", "agent": "sleep", "input": {"seconds": "$item"}},
        },
        {"id": "after", "agent": "noop"},
    ],
}
#: Sessions of this test session (its application name) waiting for a lock.
LOCK_WAITERS = (
    "select count(*) from pg_stat_activity "
    "where application_name = current_setting('application_name') and wait_event_type = 'Lock'"
)
SLOW = {
    "name": "control-slow",
    "steps": [
        {"id": "s1", "agent": "sleep", "input": {"seconds": 1.5}},
        {"id": "s2", "agent": "effect"},
        {"id": "s3", "agent": "effect"},
    ],
}


def flow(definition: dict[str, Any]) -> Flow:
    return parse_flow(definition, registry)


def calls(run_id: str, step_id: str) -> int:
    return int(ledger().get(f"calls:{run_id}:{step_id}") or 0)


class TaskLog:
    """Every task the in-process worker finished for one run: (step or node id, state)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.run_id = ""
        self._cond = threading.Condition()

    def __call__(self, sender: Any = None, kwargs: Any = None, state: Any = None, **_: Any) -> None:
        kwargs = kwargs or {}
        if kwargs.get("run_id") == self.run_id:
            with self._cond:
                self.seen.append((kwargs.get("step_id") or kwargs.get("node_id"), str(state)))
                self._cond.notify_all()

    def wait_for(self, step_id: str, timeout: float = 30.0) -> str:
        with self._cond:
            ok = self._cond.wait_for(lambda: any(s == step_id for s, _ in self.seen), timeout)
        assert ok, f"no task of step {step_id} finished; seen {self.seen}"
        return next(state for s, state in self.seen if s == step_id)


@pytest.fixture
def task_log() -> Iterator[TaskLog]:
    log = TaskLog()
    task_postrun.connect(log, weak=False)
    yield log
    task_postrun.disconnect(log)


def test_retry_redrives_from_the_failed_step_with_a_payload_patch(worker: object) -> None:
    handle = FlowRunner(engine(), flow(FLAKY)).run({"fail_attempts": 99, "keep": 1}, mode="async")
    failed = wait_for_run(handle.run_id)
    assert failed.status == "failed"
    assert run_error(failed).step_id == "b"
    assert {r.step_id: r.status for r in failed.records} == {"a": "succeeded", "b": "failed"}

    assert control.retry_run(handle.run_id, {"fail_attempts": 0}) == "running"
    env = wait_for_run(handle.run_id)
    assert env.status == "succeeded", env.metadata.error
    assert {r.step_id: r.status for r in env.records} == {
        "a": "succeeded",
        "b": "succeeded",
        "c": "succeeded",
    }
    assert record(env, "a").attempts == 1
    assert calls(handle.run_id, "a") == 1  # not run again
    assert record(env, "b").attempts == 2
    assert calls(handle.run_id, "c") == 1
    assert env.metadata.payload == {"fail_attempts": 0, "keep": 1}
    assert env.metadata.redrives == 1


def test_retry_gives_a_fresh_budget_of_tries_and_a_fresh_deadline(worker: object) -> None:
    f = flow(
        {
            "name": "control-budget",
            "deadline_seconds": 600,
            "steps": [
                {
                    "id": "b",
                    "agent": "fail",
                    "input": {"fail_attempts": "$payload.fail_attempts"},
                    "retry": {"max_attempts": 2, "backoff_seconds": 0.01, "jitter": False},
                },
                {"id": "c", "agent": "noop"},
            ],
        }
    )
    handle = FlowRunner(engine(), f).run({"fail_attempts": 99}, mode="async")
    failed = wait_for_run(handle.run_id)
    assert failed.status == "failed"
    assert record(failed, "b").attempts == 2

    # tries 3 and 4 are the retry's own budget of 2: try 3 still fails, try 4 succeeds
    before = datetime.now(UTC)
    control.retry_run(handle.run_id, {"fail_attempts": 3})
    env = wait_for_run(handle.run_id)
    assert env.status == "succeeded", env.model_dump_json(indent=2)
    b = record(env, "b")
    assert b.attempts == 4
    assert [e.attempt for e in b.attempt_errors] == [1, 2, 3]
    deadline = env.metadata.deadline_at  # the flow's deadline again, counted from the retry
    assert deadline is not None
    assert before + timedelta(seconds=600) <= deadline <= datetime.now(UTC) + timedelta(seconds=600)


def test_the_first_failures_late_errback_does_not_fail_the_retried_run(worker: object) -> None:
    handle = FlowRunner(engine(), flow(FLAKY)).run({"fail_attempts": 99}, mode="async")
    assert wait_for_run(handle.run_id).status == "failed"
    control.reopen_failed_run(handle.run_id, {"fail_attempts": 0})  # retried, not re-driven yet
    failed_task = str(uuid.uuid4())  # the step's task that failed the first time, as stored
    app.backend.mark_as_failure(failed_task, StepFailedError("b: failing on purpose (attempt 1)"))
    app.tasks[FAIL_RUN_TASK](failed_task, run_id=handle.run_id)  # its errback, arriving now
    assert envelope(handle.run_id).status == "running"


def test_retry_refuses_live_runs_and_bad_patches(worker: object) -> None:
    handle = FlowRunner(engine(), flow(FLAKY)).run({"fail_attempts": 99}, mode="async")
    wait_for_run(handle.run_id)
    with pytest.raises(FieldError, match=r"payload\.fail_attempts"):
        control.retry_run(handle.run_id, {"fail_attempts": None})  # the patch would remove a required field
    assert envelope(handle.run_id).status == "failed"  # nothing changed
    control.retry_run(handle.run_id, {"fail_attempts": 0})
    wait_for_run(handle.run_id)
    with pytest.raises(control.RunStateError, match="is succeeded; only failed runs can be retried"):
        control.retry_run(handle.run_id)
    with pytest.raises(RunNotFoundError):
        control.retry_run(str(uuid.uuid4()))
    assert control.cancel_run(handle.run_id) == "succeeded"  # a terminal run keeps its status


def test_cancel_running_run_runs_no_further_step(worker: object, task_log: TaskLog) -> None:
    handle = FlowRunner(engine(), flow(SLOW)).run({}, mode="async")
    task_log.run_id = handle.run_id

    def started() -> bool:
        env = envelope(handle.run_id)
        return env.status == "running" and bool(env.records)

    eventually(started, 30, "s1 to start")

    assert control.cancel_run(handle.run_id) == "cancelled"
    # s1 finishes its sleep after the cancel: its outcome is recorded as what it was (its effect
    # happened), with a note, and the chain ends there
    assert task_log.wait_for("s1") == "IGNORED"
    env = envelope(handle.run_id)
    assert env.status == "cancelled"
    assert run_error(env).type == "Cancelled"
    s1 = record(env, "s1")
    assert (s1.status, s1.output, s1.error) == ("succeeded", {"slept": 1.5}, None)
    assert s1.note == "finished after the run was cancelled"
    assert "s2" not in {r.step_id for r in env.records}
    assert "s3" not in {r.step_id for r in env.records}
    assert calls(handle.run_id, "s2") == 0
    assert calls(handle.run_id, "s3") == 0
    assert all(step not in ("s2", "s3") for step, _ in task_log.seen)  # the chain ended at s1


def test_cancel_closes_every_open_record_of_a_map(worker: object) -> None:
    f = flow(MAPPED)
    handle = FlowRunner(engine(), f).run({"xs": [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]}, mode="async")

    def items_running() -> bool:
        env = envelope(handle.run_id)
        return any(r.step_id.startswith("m[") and r.status == "running" for r in env.records)

    eventually(items_running, 30, "the map's first items to start")
    assert control.cancel_run(handle.run_id) == "cancelled"

    def settled() -> Envelope:
        env = envelope(handle.run_id)
        still = [r.step_id for r in env.records if r.status in ("pending", "running")]
        assert not still, f"records still open: {still}"
        late = [r for r in env.records if r.step_id.startswith("m[") and r.status == "skipped"]
        assert not late, f"items cancelled mid-try whose result has not come back: {late}"
        return env

    env = eventually(settled, 15, "every record of the cancelled run to be closed")
    m = record(env, "m")
    assert (m.status, m.output) == ("skipped", {"items": 6})
    assert step_error(m).type == "Cancelled"
    items = [r for r in env.records if r.step_id.startswith("m[")]
    assert items
    assert len(items) < 6
    for item in items:  # each item in flight at the cancel finished: recorded as it was
        assert (item.status, item.output, item.note) == (
            "succeeded",
            {"slept": 0.5},
            "finished after the run was cancelled",
        )
    assert env.status == "cancelled"
    assert "after" not in {r.step_id for r in env.records}


def test_cancel_queued_run_then_its_messages_do_nothing(worker: object, task_log: TaskLog) -> None:
    f = flow(SLOW)
    run_id = str(uuid.uuid4())
    task_log.run_id = run_id
    new = repo.NewRun(run_id, f.name, f.version, f.model_dump(mode="json", by_alias=True), {})
    with sql_engine().begin() as conn:
        repo.open_run(conn, new)
    assert control.cancel_run(run_id) == "cancelled"
    engine().start(f, run_id)  # the canvas arrives after the cancel (as a queued message would)
    assert task_log.wait_for("s1") == "IGNORED"
    env = envelope(run_id)
    assert env.status == "cancelled"
    assert env.records == []
    assert env.metadata.started_at is None


def test_cli_retry_with_patch_and_cancel(worker: object) -> None:

    handle = FlowRunner(engine(), flow(FLAKY)).run({"fail_attempts": 99}, mode="async")
    wait_for_run(handle.run_id)
    runner = CliRunner()
    bad = runner.invoke(cli, ["runs", "retry", handle.run_id, "--patch", "[1]"])
    assert bad.exit_code == 1
    assert "--patch: must be a JSON object" in bad.stderr
    ok = runner.invoke(cli, ["runs", "retry", handle.run_id, "--patch", '{"fail_attempts": 0}', "--json"])
    assert ok.exit_code == 0, ok.output
    assert wait_for_run(handle.run_id).status == "succeeded"
    done = runner.invoke(cli, ["runs", "cancel", handle.run_id])
    assert done.stdout.strip() == f"{handle.run_id} succeeded"


def test_a_map_expanding_while_its_run_is_cancelled_leaves_no_open_record(worker: object) -> None:
    f = flow(MAPPED)
    run_id = str(uuid.uuid4())
    new = repo.NewRun(run_id, f.name, f.version, f.snapshot, {"xs": [0.1, 0.1]})
    with sql_engine().begin() as conn:
        repo.open_run(conn, new)
    expanded: list[object] = []
    with sql_engine().begin() as cancel:  # the cancel's writes, not committed yet
        repo.finish_run(cancel, run_id, "cancelled")
        repo.close_open_steps(cancel, run_id, {"type": "Cancelled", "message": "test"})
        expanding = threading.Thread(target=lambda: expanded.append(nodes.expand_map(run_id, "m")))
        expanding.start()

        def waits_for_the_run_or_is_done() -> bool:
            with sql_engine().connect() as conn:
                return not expanding.is_alive() or bool(conn.execute(sa.text(LOCK_WAITERS)).scalar())

        eventually(waits_for_the_run_or_is_done, 10, "the map to wait for the cancel or to be done")
    expanding.join(10)
    assert len(expanded) == 1
    env = envelope(run_id)
    assert env.status == "cancelled"
    assert [r.step_id for r in env.records if r.status in ("pending", "running")] == []
