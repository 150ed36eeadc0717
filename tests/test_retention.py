"""Retention: ``campaignflow runs|rejected|deadletters purge`` delete what is old enough, a batch at a
time, never a live run; the beat entry ``campaignflow-retention`` applies the retention settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestration.cli.main import cli
from orchestration.control.manager import manager
from orchestration.control.rejected import EventRejectedError, list_rejected
from orchestration.control.retention import PurgeReport, purge_runs
from orchestration.envelope import Envelope
from orchestration.errors import FieldError
from orchestration.names import RETENTION_HEARTBEAT, RETENTION_SCHEDULE_ENTRY, RETENTION_TASK
from orchestration.store import counters, deadletters, sql_engine
from orchestration.store import repository as repo
from orchestration.store.heartbeats import last_beats
from tests.support import services
from tests.support.background import CLI, ROOT, background
from tests.support.flows import flow, run
from tests.support.wait import eventually
from tests.support.wiring import app
from tests.support.workers import WorkerProcess

FLOW = "retention-flow"


def finished_runs() -> tuple[Envelope, Envelope]:
    ok = run(flow([{"id": "a", "agent": "noop"}], name=FLOW))
    bad = run(flow([{"id": "a", "agent": "fail", "input": {"permanent": True}}], name=FLOW))
    assert (ok.status, bad.status) == ("succeeded", "failed")
    return ok, bad


def live_run() -> str:
    """A run that stays queued: opened in the store, never published."""
    new = repo.NewRun(
        run_id=str(uuid.uuid4()),
        flow_name=FLOW,
        flow_version="1",
        flow_def={"name": FLOW, "steps": [{"id": "a", "agent": "noop"}]},
        payload={},
        event_id=f"evt-{uuid.uuid4()}",
    )
    with sql_engine().begin() as conn:
        return repo.open_run(conn, new)[0]


def run_ids() -> set[str]:
    with sql_engine().connect() as conn:
        return {r.run_id for r in repo.list_runs(conn, limit=1000)}


def totals() -> dict[tuple[str, str, str], int]:
    with sql_engine().connect() as conn:
        return counters.totals(conn)


def one_dead_letter() -> None:
    values = {
        "fingerprint": uuid.uuid4().hex * 2,
        "queue": "orchestration",
        "task": None,
        "reason": "bad_json",
        "detail": "body is not valid JSON",
        "headers": "{}",
        "content_type": "application/json",
        "content_encoding": "utf-8",
        "body": b"{",
        "body_size": 1,
    }
    with sql_engine().begin() as conn:
        deadletters.record(conn, values)


def one_rejected_event() -> None:
    with pytest.raises(EventRejectedError):
        manager().ingest_event({"id": f"evt-{uuid.uuid4()}", "type": "no.such.route", "payload": {}})


def cli_json(*argv: str) -> dict[str, object]:
    result = CliRunner().invoke(cli, [*argv, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def test_runs_purge_deletes_finished_runs_with_their_records_never_a_live_one(worker: object) -> None:
    ok, bad = finished_runs()
    live = live_run()
    counted = totals()
    runner = CliRunner()

    assert cli_json("runs", "purge", "--older-than", "1h")["purged"] == 0  # they ended just now
    dry = cli_json("runs", "purge", "--older-than", "0s", "--dry-run")
    assert (dry["purged"], dry["step_records"], dry["dry_run"]) == (2, 2, True)
    assert run_ids() == {ok.run_id, bad.run_id, live}
    failed = cli_json("runs", "purge", "--older-than", "0s", "--status", "failed")
    assert (failed["purged"], failed["step_records"], failed["dry_run"]) == (1, 1, False)
    assert run_ids() == {ok.run_id, live}
    text = runner.invoke(cli, ["runs", "purge", "--older-than", "0s"])
    assert text.exit_code == 0, text.output
    assert text.stdout.startswith("purged 1 runs (1 step records) that ended before ")
    assert run_ids() == {live}
    assert runner.invoke(cli, ["runs", "show", ok.run_id]).exit_code == 1
    assert totals() == counted  # the counters keep what was purged

    for argv, message in (
        (["--older-than", "0s", "--status", "running"], "'running' is not one of"),
        (["--older-than", "30 days"], "'30 days' is not a duration"),
        ([], "Missing option '--older-than'"),
    ):
        refused = runner.invoke(cli, ["runs", "purge", *argv])
        assert refused.exit_code == 2, refused.output
        assert message in refused.stderr
    assert run_ids() == {live}
    with pytest.raises(FieldError, match="only finished runs are purged"):
        purge_runs(timedelta(0), ["queued"])


def test_a_purge_skips_the_runs_another_transaction_holds_and_never_waits(worker: object) -> None:
    held, _ = finished_runs()
    reports: list[PurgeReport] = []
    purge = threading.Thread(target=lambda: reports.append(purge_runs(timedelta(0), batch=1)))
    with sql_engine().begin() as holder:
        assert repo.lock_run(holder, held.run_id) is not None  # a writer holds this run's row
        purge.start()
        eventually(lambda: not purge.is_alive(), 30, "the purge to end while a run's row is held")
    assert [(r.purged, r.step_records) for r in reports] == [(1, 1)]
    assert run_ids() == {held.run_id}
    assert purge_runs(timedelta(0)).purged == 1  # released: the next purge takes it


def test_rejected_and_deadletters_purge_take_what_is_old_enough(worker: object) -> None:
    one_rejected_event()
    one_dead_letter()
    assert cli_json("rejected", "purge", "--older-than", "1h")["purged"] == 0
    assert cli_json("rejected", "purge", "--older-than", "0s", "--status", "replayed")["purged"] == 0
    dry = cli_json("rejected", "purge", "--older-than", "0s", "--dry-run")
    assert (dry["purged"], dry["dry_run"]) == (1, True)
    text = CliRunner().invoke(cli, ["rejected", "purge", "--older-than", "0s"]).stdout
    assert text.startswith("purged 1 rejected events received before ")
    assert list_rejected(None) == []

    assert cli_json("deadletters", "purge", "--older-than", "1h")["purged"] == 0
    assert cli_json("deadletters", "purge", "--all", "--dry-run") == {
        "purged": 1,
        "dry_run": True,
        "before": None,
    }
    gone = cli_json("deadletters", "purge", "--older-than", "0s", "--status", "dead")
    assert (gone["purged"], gone["dry_run"]) == (1, False)


def test_beat_applies_the_retention_settings_on_the_orchestration_queue(
    worker: object, tmp_path: Path
) -> None:
    """A real beat and a real worker (their own broker keys, the session's store) with every
    retention at 1 s: what is finished, rejected or dead goes, the live run stays."""
    assert app.conf.beat_schedule[RETENTION_SCHEDULE_ENTRY]["task"] == RETENTION_TASK
    assert app.amqp.router.route({}, RETENTION_TASK)["queue"].name == "orchestration"
    finished = finished_runs()
    live = live_run()
    one_rejected_event()
    one_dead_letter()
    counted = totals()
    prefix = f"{services.new_schema_name('cf_retention')}:"
    env = {
        "CAMPAIGNFLOW_REDIS_KEY_PREFIX": prefix,
        "CAMPAIGNFLOW_RETENTION_RUNS": "1s",
        "CAMPAIGNFLOW_RETENTION_REJECTED": "1s",
        "CAMPAIGNFLOW_RETENTION_DEAD_LETTERS": "1s",
        "CAMPAIGNFLOW_RETENTION_INTERVAL": "0.5",
        "CAMPAIGNFLOW_SWEEP_INTERVAL": "3600",
        "CAMPAIGNFLOW_CAMPAIGN_TICK_INTERVAL": "3600",
    }
    worker_proc = WorkerProcess("retention", ["orchestration"], log_dir=tmp_path).start(**env)
    beat_log = tmp_path / "beat.log"
    beat = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "orchestration.app",
        "beat",
        "-s",
        str(tmp_path / "schedule"),
    ]
    with background([*beat, "-l", "INFO"], beat_log, env):

        def purged() -> bool:
            assert run_ids() == {live}, f"worker log:\n{worker_proc.log()}"
            assert list_rejected(None) == []
            with sql_engine().connect() as conn:
                assert deadletters.dead_counts(conn) == {}
                assert RETENTION_HEARTBEAT in last_beats(conn)
            return True

        try:
            eventually(purged, 60, "the retention run to purge what is older than 1 s", interval=0.2)
        finally:
            worker_proc.stop()
            services.clear_prefix(prefix)
    assert f"Sending due task {RETENTION_SCHEDULE_ENTRY}" in beat_log.read_text(errors="replace")
    assert totals() == counted
    assert {r.run_id for r in finished} & run_ids() == set()


@pytest.mark.parametrize(
    ("value", "problem"),
    [("30 days", "'30 days' is not a duration; write a number and a unit"), ("0s", "must be more than zero")],
)
def test_a_bad_retention_setting_is_one_line_naming_the_variable(value: str, problem: str) -> None:
    env = {**os.environ, "CAMPAIGNFLOW_RETENTION_RUNS": value}
    done = subprocess.run(
        [*CLI, "runs", "list"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: CAMPAIGNFLOW_RETENTION_RUNS: {problem}")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
