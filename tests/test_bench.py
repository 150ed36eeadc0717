"""`campaignflow bench` runs both sides on the real worker and reports the documented keys."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from orchestration.cli.main import cli
from orchestration.control.manager import db_routes
from orchestration.store import sql_engine, stats

KEYS = {
    "shape",
    "n",
    "campaignflow_flows_per_s",
    "plain_flows_per_s",
    "ratio",
    "p50_first_step_ms",
    "p99_first_step_ms",
}


def test_bench_json_reports_both_shapes_and_progress_goes_to_stderr(worker: object) -> None:
    result = CliRunner().invoke(cli, ["bench", "-n", "5", "--latency-samples", "3", "--external", "--json"])
    assert result.exit_code == 0, result.output
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


def test_bench_rejects_unknown_shapes() -> None:
    result = CliRunner().invoke(cli, ["bench", "--shape", "zigzag"])
    assert result.exit_code != 0
    assert "unknown shape zigzag" in result.output


def test_bench_table_shows_rates_ratio_and_cpu_per_flow(worker: object) -> None:
    result = CliRunner().invoke(
        cli,
        ["bench", "-n", "3", "--rounds", "2", "--latency-samples", "2", "--external", "--shape", "sequence"],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
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
    cells = next(c for c in map(str.split, lines) if c[:1] == ["sequence"] and len(c) > 2)  # not the bar
    assert cells[1] == "3"
    assert all(float(c) > 0 for c in cells[2:])


def test_bench_api_compares_http_ingest_with_send_task(worker: object) -> None:
    result = CliRunner().invoke(
        cli, ["bench", "--api", "-n", "6", "--clients", "2", "--rounds", "1", "--external", "--json"]
    )
    assert result.exit_code == 0, result.output
    sides = json.loads(result.stdout)
    assert [s["side"] for s in sides] == ["POST /v1/events", "send_task ingest"]
    for s in sides:
        assert set(s) == {"side", "n", "clients", "events_per_s", "p50_ms", "p99_ms", "ratio"}
        assert (s["n"], s["clients"]) == (6, 2)
        assert s["events_per_s"] > 0
        assert 0 < s["p50_ms"] <= s["p99_ms"]
    assert sides[1]["ratio"] == 1.0
    with sql_engine().connect() as conn:
        finished = stats.run_counts(conn)
    # warm-up (6 each) and one round (6 each): every event became a run of the bench flow, ended
    assert {(flow, status): n for flow, status, n, _ in finished} == {("bench-ingest", "succeeded"): 24}
    assert list_routes_left() == []


def list_routes_left() -> list[object]:
    return list(db_routes())
