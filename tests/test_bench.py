"""`campaignflow bench` runs both sides in its sandbox (a schema and a Redis key prefix of its own)
and reports the documented keys; the production store, run counters and step metrics stay as they
were, whether the bench runs its own worker or uses `campaignflow worker --bench` workers."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from orchestration.cli.main import cli
from orchestration.engine import step_metrics
from orchestration.ops.bench import sandbox_settings
from orchestration.settings import get_settings
from orchestration.store import counters, routes, schemas, sql_engine, stats
from tests.support import services
from tests.support.background import CLI, ROOT, background
from tests.support.config import settings_env
from tests.support.flows import flow, run
from tests.support.wait import eventually

KEYS = {
    "shape",
    "n",
    "campaignflow_flows_per_s",
    "plain_flows_per_s",
    "ratio",
    "p50_first_step_ms",
    "p99_first_step_ms",
}


@pytest.fixture
def sandbox(worker: object) -> Iterator[str]:
    """The bench's store URL; its schema is dropped at the end (the bench keeps it between runs)."""
    url = sandbox_settings(get_settings()).effective_database_url()
    yield url
    sql_engine(url).dispose()
    schema = schemas.schema_of(url)
    assert schema is not None
    services.drop_schema(schema)


def noop_steps() -> dict[str, Any]:
    """The step metrics of the noop agent under the current key prefix (the bench's only agent)."""
    conn = step_metrics.client()
    assert conn is not None
    steps = step_metrics.read(conn).get("noop", step_metrics.AgentSteps())
    return {"tries": steps.tries, "retries": steps.retries, "buckets": steps.buckets}


def production() -> dict[str, Any]:
    """What the bench must leave as it was: the production tables, counters and step metrics."""
    with sql_engine().connect() as conn:
        tables = ("run", "step_record", "ingest_key", "routing_rule")
        rows = {table: stats.count_rows(conn, table) for table in tables}
        totals = counters.totals(conn)
    return {"rows": rows, "counters": totals, "noop": noop_steps()}


def production_with_one_run() -> dict[str, Any]:
    """Production after a run of its own, once the run's step metrics arrived."""
    tries = noop_steps()["tries"].get("success", 0)
    assert run(flow([{"id": "a", "agent": "noop"}], name="production")).status == "succeeded"

    def settled() -> dict[str, Any]:
        step_metrics.flush()
        now = production()
        assert (
            now["noop"]["tries"].get("success", 0) >= tries + 1
        )  # a step left over from an earlier test may land too
        return now

    return eventually(settled, 15, "the production run's step metrics")


def bench(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "bench", *argv], cwd=ROOT, env=os.environ, capture_output=True, text=True, timeout=600
    )


def test_bench_json_reports_both_shapes_and_leaves_production_untouched(
    sandbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = production_with_one_run()
    result = bench("-n", "5", "--latency-samples", "3", "--json")
    assert result.returncode == 0, result.stderr
    objects = json.loads(result.stdout)  # one JSON document: the progress is on stderr
    assert "sequence" in result.stderr
    assert "parallel" in result.stderr
    assert [o["shape"] for o in objects] == ["sequence", "parallel"]
    for o in objects:
        assert set(o) == KEYS
        assert o["n"] == 5
        assert o["campaignflow_flows_per_s"] > 0
        assert o["plain_flows_per_s"] > 0
        # the ratio is of the unrounded rates; the printed rates are rounded to 0.1
        assert abs(o["ratio"] - o["campaignflow_flows_per_s"] / o["plain_flows_per_s"]) < 0.02
        assert 0 < o["p50_first_step_ms"] <= o["p99_first_step_ms"]

    step_metrics.flush()
    assert production() == before
    # everything went to the sandbox: 5 to warm up, 3 rounds of 5, 3 one at a time, per shape
    with sql_engine(sandbox).connect() as conn:
        started = {f: n for (f, kind, _), n in counters.totals(conn).items() if kind == "started"}
    assert started == {"bench-sequence": 23, "bench-parallel": 23}
    with settings_env(monkeypatch, redis_key_prefix=sandbox_settings(get_settings()).redis_key_prefix or ""):
        assert sum(noop_steps()["tries"].values()) == 23 * 5 + 23 * 5


def test_bench_rejects_unknown_shapes() -> None:
    result = CliRunner().invoke(cli, ["bench", "--shape", "zigzag"])
    assert result.exit_code != 0
    assert "unknown shape zigzag" in result.output


def test_bench_external_runs_on_bench_workers_and_shows_rates_ratio_and_cpu_per_flow(
    sandbox: str, tmp_path: Path
) -> None:
    before = production_with_one_run()
    log = tmp_path / "bench-worker.log"
    worker_argv = [*CLI, "worker", "--all", "--bench", "-P", "threads", "-c", "4", "-l", "WARNING"]
    with background(worker_argv, log):
        result = bench(
            "-n", "3", "--rounds", "2", "--latency-samples", "2", "--external", "--shape", "sequence"
        )
    assert result.returncode == 0, f"{result.stderr}\nworker:\n{log.read_text(errors='replace')}"
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("shape"))
    for column in (
        "cf flows/s",
        "plain flows/s",
        "ratio",
        "cf p50 first ms",
        "cf cpu ms/flow",
        "plain cpu ms/flow",
    ):
        assert column in header
    cells = next(c for c in map(str.split, lines) if c[:1] == ["sequence"] and len(c) > 2)
    assert cells[1] == "3"
    assert all(float(c) > 0 for c in cells[2:])
    step_metrics.flush()
    assert production() == before
    with sql_engine(sandbox).connect() as conn:
        assert stats.count_rows(conn, "run") == 3 + 2 * 3 + 2


def test_bench_external_with_task_events_off_needs_workers_without_them(sandbox: str, tmp_path: Path) -> None:
    """Both sides run on the bench workers: ``--task-events off`` measures only on workers started
    with ``CAMPAIGNFLOW_TASK_EVENTS=off``, and says how to start them when they send events."""
    log = tmp_path / "bench-worker.log"
    worker_argv = [*CLI, "worker", "--all", "--bench", "-P", "threads", "-c", "4", "-l", "INFO"]
    with background(worker_argv, log, {"CAMPAIGNFLOW_TASK_EVENTS": "off"}):
        eventually(lambda: " ready." in log.read_text(errors="replace"), 60, "the bench worker to start")
        refused = bench("-n", "1", "--external", "--task-events", "on", "--shape", "sequence")
        result = bench(
            "-n", "2", "--rounds", "1", "--latency-samples", "1", "--external", "--task-events", "off",
            "--shape", "sequence", "--json",
        )  # fmt: skip
    assert refused.returncode != 0
    assert "start them with CAMPAIGNFLOW_TASK_EVENTS=on" in refused.stdout + refused.stderr
    assert result.returncode == 0, f"{result.stderr}\nworker:\n{log.read_text(errors='replace')}"
    assert [o["shape"] for o in json.loads(result.stdout)] == ["sequence"]


def test_bench_api_compares_http_ingest_with_send_task_in_its_sandbox(sandbox: str) -> None:
    before = production_with_one_run()
    result = bench("--api", "-n", "6", "--clients", "2", "--rounds", "1", "--json")
    assert result.returncode == 0, result.stderr
    sides = json.loads(result.stdout)
    assert [s["side"] for s in sides] == ["POST /v1/events", "send_task ingest"]
    for s in sides:
        assert set(s) == {"side", "n", "clients", "events_per_s", "p50_ms", "p99_ms", "ratio"}
        assert (s["n"], s["clients"]) == (6, 2)
        assert s["events_per_s"] > 0
        assert 0 < s["p50_ms"] <= s["p99_ms"]
    assert sides[1]["ratio"] == 1.0
    step_metrics.flush()
    assert production() == before
    with sql_engine(sandbox).connect() as conn:
        ended = {key: n for key, n in counters.totals(conn).items() if key[1] == counters.FINISHED}
        left = routes.list_routes(conn)
    # warm-up (6 each) and one round (6 each), the API's and send_task's: every event became a run
    assert ended == {("bench-ingest", counters.FINISHED, "succeeded"): 24}
    assert left == []  # the bench's route is gone with it


def test_bench_guards_times_the_send_guards_in_its_sandbox(sandbox: str) -> None:
    result = bench("--guards", "-n", "16", "--json")
    assert result.returncode == 0, result.stderr
    objects = json.loads(result.stdout)
    assert [o["case"] for o in objects] == [
        "transactional",
        "marketing",
        "marketing, 8 threads, spread",
        "marketing, 8 threads, one recipient",
    ]
    for o in objects:
        assert o["n"] == 16
        assert o["sends_per_s"] > 0
        assert 0 < o["p50_ms"] <= o["p99_ms"]
        assert o["cpu_ms_per_send"] > 0
    with sql_engine(sandbox).connect() as conn:  # the counts went to the sandbox, none to production
        assert stats.count_rows(conn, "frequency_slot") == 16 * 3
    with sql_engine().connect() as conn:
        assert stats.count_rows(conn, "frequency_slot") == 0
    table = bench("--guards", "-n", "8")
    assert "marketing, 8 threads, one recipient" in table.stdout
    assert "cpu ms/send" in table.stdout


def test_bench_limited_reports_a_limits_cost_and_the_rate_it_held(sandbox: str) -> None:
    result = bench(
        "--shape", "limited", "-n", "5", "--rounds", "1", "--held-n", "8", "--limit-rate", "40/s", "--json"
    )
    assert result.returncode == 0, result.stderr
    (o,) = json.loads(result.stdout)
    assert (o["shape"], o["n"], o["held_n"], o["held_limit"]) == ("limited", 5, 8, "40/s")
    assert o["unlimited_flows_per_s"] > 0
    assert o["limited_flows_per_s"] > 0
    assert o["acquire_cpu_ms"] > 0
    assert o["round_trip_ms"] > 0
    assert o["round_trips_per_step"] == 2
    assert o["held_steps_per_s"] > 0
    # first to last start: 7 intervals, one of which the rate's tolerance may take back
    assert o["held_of_limit"] <= 7 / 6 + 0.01
