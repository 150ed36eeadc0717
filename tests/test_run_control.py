"""Run control: retry re-drives a failed run from its failed step (optionally with a corrected
payload); cancel stops a queued or running run and no further step runs."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery.signals import task_postrun
from typer.testing import CliRunner

from orchestration.cli.main import cli
from orchestration.control import run_control as control
from orchestration.errors import FieldError, RunNotFoundError
from orchestration.flows import Flow, parse_flow
from orchestration.orchestrators.base import FlowRunner
from orchestration.store import repository as repo
from orchestration.store import sql_engine
from tests.support.agents import ledger
from tests.support.runs import envelope, record, run_error, wait_for_run
from tests.support.wait import eventually
from tests.support.wiring import engine, registry

FLAKY = {
    "name": "control-flaky",
    "input_required": ["fail_attempts"],
    "steps": [
        {"id": "a", "agent": "effect"},
        {"id": "b", "agent": "fail", "input": {"permanent": True, "fail_attempts": "$payload.fail_attempts"}},
        {"id": "c", "agent": "effect"},
    ],
}
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
    # s1 finishes its sleep after the cancel: its result is discarded and the chain ends there
    assert task_log.wait_for("s1") == "IGNORED"
    env = envelope(handle.run_id)
    assert env.status == "cancelled"
    assert run_error(env).type == "Cancelled"
    s1 = record(env, "s1")
    assert s1.status == "skipped"
    assert s1.output is None
    assert s1.error is not None
    assert s1.error.type == "Cancelled"
    assert "s2" not in {r.step_id for r in env.records}
    assert "s3" not in {r.step_id for r in env.records}
    assert calls(handle.run_id, "s2") == 0
    assert calls(handle.run_id, "s3") == 0
    assert all(step not in ("s2", "s3") for step, _ in task_log.seen)  # the chain ended at s1


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
