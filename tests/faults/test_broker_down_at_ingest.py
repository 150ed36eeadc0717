"""The broker is down while events come in (issue #10): every event is stored as a run, answered
``queued`` with its publication pending, in one line and with no traceback; the same event id
answers as a duplicate of that run. When the broker is back, the outbox relay (beat) publishes them
and every run succeeds, each side effect once. The broker is a redis-server of this test alone; the
worker and beat are real ``celery`` processes on it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from celery import Celery

from orchestration.store import outbox, sql_engine
from orchestration.store.tables import run_t
from tests.support.agents import ledger
from tests.support.background import free_port, stop_group
from tests.support.figures import figure
from tests.support.private_redis import PrivateRedis
from tests.support.runs import envelope
from tests.support.wait import eventually
from tests.support.wiring import registry
from tests.support.workers import ROOT, WorkerProcess

pytestmark = pytest.mark.crash

EVENT_TYPE = "outbox.fault"
FLOW = {
    "name": "outbox-fault",
    "steps": [{"id": "fx", "agent": "effect"}, {"id": "after", "agent": "noop"}],
}
#: Events sent through the command line and through the Python API while the broker is down.
CLI_EVENTS, API_EVENTS = 6, 6
PENDING_LINE = re.compile(
    r"^[0-9a-f-]{36} queued \(publication pending: the broker is not reachable; the run starts when it "
    r"answers\)$"
)
DUPLICATE_LINE = re.compile(
    r"^[0-9a-f-]{36} queued \(duplicate, publication pending: the run starts when the broker answers\)$"
)
CLI = [sys.executable, "-m", "orchestration.cli.main"]


def event(event_id: str) -> dict[str, Any]:
    return {"id": event_id, "type": EVENT_TYPE, "payload": {"email": f"{event_id}@example.com"}}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateRedis]:
    redis = PrivateRedis(tmp_path)
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
def env(broker: PrivateRedis, tmp_path: Path) -> dict[str, str]:
    """The test's processes: the private broker, the session's run store, a flow and its route."""
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "outbox-fault.json").write_text(json.dumps(FLOW), encoding="utf-8")
    routes = {"routes": [{"event_type": EVENT_TYPE, "flow": FLOW["name"]}]}
    (tmp_path / "routes.json").write_text(json.dumps(routes), encoding="utf-8")
    return {
        **os.environ,
        "CAMPAIGNFLOW_BROKER_URL": broker.url(0),
        "CAMPAIGNFLOW_RESULT_BACKEND": broker.url(1),
        "CAMPAIGNFLOW_REDIS_KEY_PREFIX": "",
        "CAMPAIGNFLOW_FLOWS_DIR": str(tmp_path / "flows"),
        "CAMPAIGNFLOW_ROUTES_FILE": str(tmp_path / "routes.json"),
        "CAMPAIGNFLOW_RELAY_INTERVAL": "0.5",
        "CAMPAIGNFLOW_SWEEP_INTERVAL": "3600",
        "CAMPAIGNFLOW_CAMPAIGN_TICK_INTERVAL": "3600",
    }


def start_beat(env: dict[str, str], tmp_path: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "celery", "-A", "orchestration.app", "beat", "-l", "INFO"]
    with (tmp_path / "beat.log").open("wb") as log:
        return subprocess.Popen(
            [*argv, "-s", str(tmp_path / "beat-schedule")],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_ready(worker: WorkerProcess, broker: PrivateRedis) -> None:
    control = Celery(broker=broker.url(0))
    try:

        def answers() -> bool:
            if worker.proc is not None and worker.proc.poll() is not None:
                pytest.fail(f"worker exited {worker.proc.returncode}:\n{worker.log()}")
            assert control.control.ping(destination=[worker.name], timeout=0.5), "no pong yet"
            return True

        eventually(answers, 60, f"worker {worker.name} to answer a ping on the private broker", interval=0)
    finally:
        control.close()


def cli_ingest(env: dict[str, str], path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "ingest", str(path)], env=env, capture_output=True, text=True, timeout=120)


API_SCRIPT = """
    import json, sys
    from orchestration.bootstrap import bootstrap
    from orchestration.control.manager import manager
    bootstrap()
    handles = [manager().ingest_event(e) for e in json.loads(sys.argv[1])]
    print(json.dumps([{**h.as_dict(), "pending": h.pending} for h in handles]))
"""


def api_ingest(env: dict[str, str], events: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(API_SCRIPT), json.dumps(events)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def runs_by_event(prefix: str) -> dict[str, list[Any]]:
    with sql_engine().connect() as conn:
        rows = conn.execute(sa.select(run_t.c.run_id, run_t.c.event_id, run_t.c.status)).all()
    found: dict[str, list[Any]] = {}
    for row in rows:
        if row.event_id and row.event_id.startswith(prefix):
            found.setdefault(row.event_id, []).append(row)
    return found


def test_events_ingested_while_the_broker_is_down_run_once_it_is_back(
    clean_db: str, broker: PrivateRedis, env: dict[str, str], tmp_path: Path
) -> None:
    worker = WorkerProcess("outbox-fault", registry.queue_names(), concurrency=2, log_dir=tmp_path)
    worker.start(**{k: v for k, v in env.items() if k.startswith("CAMPAIGNFLOW_")})
    beat = start_beat(env, tmp_path)
    try:
        wait_ready(worker, broker)
        (tmp_path / "warm.json").write_text(json.dumps(event("warm-up")), encoding="utf-8")
        warm = cli_ingest(env, tmp_path / "warm.json")
        assert warm.returncode == 0, warm.stderr
        assert re.fullmatch(r"[0-9a-f-]{36} queued\n", warm.stdout), warm.stdout
        warm_id = warm.stdout.split()[0]
        eventually(lambda: envelope(warm_id).status == "succeeded", 60, "the warm-up run to succeed")

        broker.stop()
        down_at = time.monotonic()
        cli_events = [event(f"down-cli-{i}") for i in range(CLI_EVENTS)]
        (tmp_path / "down.json").write_text(json.dumps(cli_events), encoding="utf-8")
        by_cli = cli_ingest(env, tmp_path / "down.json")
        by_api = api_ingest(env, [event(f"down-api-{i}") for i in range(API_EVENTS)])
        (tmp_path / "again.json").write_text(json.dumps(cli_events[:2]), encoding="utf-8")
        again = cli_ingest(env, tmp_path / "again.json")
        backlog_while_down = backlog()
        broker.start()
        back_at = time.monotonic()

        # the command line: exit 0, one line per event, nothing on stderr
        assert by_cli.returncode == 0, by_cli.stderr
        assert by_cli.stderr == ""
        cli_lines = by_cli.stdout.splitlines()
        assert len(cli_lines) == CLI_EVENTS, by_cli.stdout
        assert all(PENDING_LINE.match(line) for line in cli_lines), by_cli.stdout
        # the Python API: answered queued and pending, one warning line per event, no traceback
        assert by_api.returncode == 0, by_api.stderr
        answers = json.loads(by_api.stdout)
        assert [(a["status"], a["duplicate"], a["pending"]) for a in answers] == [
            ("queued", False, True)
        ] * API_EVENTS
        warnings = by_api.stderr.splitlines()
        assert len(warnings) == API_EVENTS, by_api.stderr
        assert all("publication pending: the broker is not reachable" in w for w in warnings), by_api.stderr
        assert "Traceback" not in by_api.stderr
        # the same event ids again: the same runs, as duplicates
        assert again.returncode == 0, again.stderr
        assert again.stderr == ""
        assert [line.split()[0] for line in again.stdout.splitlines()] == [
            line.split()[0] for line in cli_lines[:2]
        ]
        assert all(DUPLICATE_LINE.match(line) for line in again.stdout.splitlines()), again.stdout
        assert backlog_while_down == CLI_EVENTS + API_EVENTS

        run_ids = [line.split()[0] for line in cli_lines] + [a["run_id"] for a in answers]

        def all_ended() -> list[str]:
            statuses = [str(envelope(run_id).status) for run_id in run_ids]
            assert all(s in ("succeeded", "failed", "cancelled") for s in statuses), Counter(statuses)
            return statuses

        statuses = eventually(all_ended, 120, "every run stored while the broker was down to end")
        published_in = time.monotonic() - back_at
    finally:
        stop_group(beat)
        worker.stop()

    per_event = runs_by_event("down-")
    duplicate_runs = sum(len(rows) - 1 for rows in per_event.values())
    effects = {run_id: int(ledger().get(f"effects:{run_id}") or 0) for run_id in run_ids}
    calls = {run_id: int(ledger().get(f"calls:{run_id}:fx") or 0) for run_id in run_ids}
    counts = Counter(statuses)
    stuck = backlog()
    lost = len(run_ids) - sum(counts.values())
    assert len(per_event) == CLI_EVENTS + API_EVENTS
    assert duplicate_runs == 0
    assert counts == Counter({"succeeded": len(run_ids)})
    assert set(effects.values()) == {1}
    assert set(calls.values()) == {1}
    assert stuck == 0
    for run_id in run_ids:
        with sql_engine().connect() as conn:
            [entry] = outbox.entries(conn, run_id)
        assert entry["published_at"] is not None
    figure(
        f"broker down at ingest: {len(run_ids)} runs stored while down ({CLI_EVENTS} by the CLI, "
        f"{API_EVENTS} by the Python API; broker down {back_at - down_at:.1f} s); after it came back "
        f"all ended in {published_in:.1f} s: in flight {len(run_ids)}, succeeded {counts['succeeded']}, "
        f"failed {counts['failed']}, stuck in the outbox {stuck}, lost {lost}, duplicate runs "
        f"{duplicate_runs}, duplicated effects {sum(n - 1 for n in effects.values())}"
    )


def backlog() -> int:
    with sql_engine().connect() as conn:
        return outbox.backlog(conn)[0]


def test_ingest_says_so_in_one_line_when_even_the_store_is_down(tmp_path: Path) -> None:
    """Nothing can keep the event: the command fails with one line naming the store, not a traceback."""
    (tmp_path / "e.json").write_text(json.dumps(event("no-store")), encoding="utf-8")
    env = {
        **os.environ,
        "CAMPAIGNFLOW_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/campaignflow",
    }
    result = cli_ingest(env, tmp_path / "e.json")
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: run store not reachable ("), result.stderr
    assert lines[0].endswith("check CAMPAIGNFLOW_DATABASE_URL and that the database runs")
