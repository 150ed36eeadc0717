"""The sweeper re-drives runs whose messages were lost, and fails what cannot finish."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from orchestration.control.sweeper import sweep
from orchestration.flows import Flow
from orchestration.store import repository as repo
from orchestration.store import sql_engine
from orchestration.store.tables import run_t, step_t
from tests.support.agents import ledger
from tests.support.flows import flow
from tests.support.runs import envelope, record, run_error, wait_for_run
from tests.support.wiring import app, engine

HOUR_AGO = datetime.now(UTC) - timedelta(hours=1)


def open_unpublished(f: Flow, *, deadline: datetime | None = None) -> str:
    """A run whose message never reached the broker (as when the broker crashed right after commit)."""
    run_id = str(uuid.uuid4())
    new = repo.NewRun(
        run_id=run_id,
        flow_name=f.name,
        flow_version=f.version,
        flow_def=f.snapshot,
        payload={},
        deadline_at=deadline,
    )
    with sql_engine().begin() as conn:
        repo.open_run(conn, new)
    return run_id


def backdate(run_id: str) -> None:
    with sql_engine().begin() as conn:
        conn.execute(run_t.update().where(run_t.c.run_id == run_id).values(updated_at=HOUR_AGO))
        conn.execute(step_t.update().where(step_t.c.run_id == run_id).values(updated_at=HOUR_AGO))


def test_lost_message_is_redriven_to_success(worker: object) -> None:
    run_id = open_unpublished(flow([{"id": "a", "agent": "noop"}, {"id": "b", "agent": "noop"}]))
    backdate(run_id)
    report = sweep(engine(), stall_seconds=60, max_redrives=3)
    assert report.redriven == [run_id]
    env = wait_for_run(run_id)
    assert env.status == "succeeded"
    assert env.metadata.redrives == 1
    assert [r.status for r in env.records] == ["succeeded", "succeeded"]


def test_step_left_running_by_a_dead_worker_runs_again_once(worker: object) -> None:
    f = flow([{"id": "a", "agent": "noop"}, {"id": "fx", "agent": "effect"}])
    run_id = open_unpublished(f)
    with sql_engine().begin() as conn:  # what a worker that died in the middle of the run left behind
        repo.mark_run_running(conn, run_id)
        repo.begin_step(conn, run_id, "a", "noop")
        repo.finish_step(conn, run_id, "a", status="succeeded", output={"ok": True})
        repo.begin_step(conn, run_id, "fx", "effect")
    backdate(run_id)
    assert sweep(engine(), stall_seconds=60, max_redrives=3).redriven == [run_id]
    env = wait_for_run(run_id)
    assert env.status == "succeeded"
    assert record(env, "a").attempts == 1
    assert record(env, "fx").attempts == 2
    assert int(ledger().get(f"effects:{run_id}") or 0) == 1


def test_stalled_past_max_redrives_is_failed_with_a_reason(worker: object) -> None:
    run_id = open_unpublished(flow([{"id": "a", "agent": "noop"}]))
    with sql_engine().begin() as conn:
        repo.begin_step(conn, run_id, "a", "noop")
        conn.execute(run_t.update().where(run_t.c.run_id == run_id).values(redrives=2))
    backdate(run_id)
    report = sweep(engine(), stall_seconds=60, max_redrives=2)
    assert report.failed == [run_id]
    assert report.redriven == []
    env = envelope(run_id)
    assert env.status == "failed"
    assert run_error(env).type == "Stalled"
    assert record(env, "a").status == "failed"


def test_run_past_its_deadline_is_failed(worker: object) -> None:
    run_id = open_unpublished(flow([{"id": "a", "agent": "noop"}]), deadline=HOUR_AGO)
    report = sweep(engine(), stall_seconds=3600 * 24, max_redrives=3)
    assert report.past_deadline == [run_id]
    assert run_error(envelope(run_id)).type == "DeadlineExceeded"


def test_runs_with_recent_progress_are_left_alone(worker: object) -> None:
    run_id = open_unpublished(flow([{"id": "a", "agent": "noop"}]))
    report = sweep(engine(), stall_seconds=60, max_redrives=3)
    assert run_id not in report.redriven
    assert envelope(run_id).status == "queued"


def test_sweep_task_runs_on_the_workers_and_leaves_a_heartbeat(worker: object) -> None:
    result = app.send_task("campaignflow.engine.sweep").get(timeout=15)
    assert result == {"redriven": [], "failed": [], "past_deadline": []}
    with sql_engine().connect() as conn:
        assert conn.execute(sa.text("select count(*) from heartbeat where name = 'sweeper'")).scalar() == 1
