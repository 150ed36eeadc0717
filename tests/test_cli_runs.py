"""The runs commands print the envelope in the documented shape; flows load from JSON too."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from orchestration.cli.main import cli
from tests.support.flows import flow, run

ENVELOPE_KEYS = {"run_id", "flow", "status", "metadata", "records"}
METADATA_KEYS = {"event_id", "campaign", "orchestrator", "created_at", "started_at", "finished_at"}
RECORD_KEYS = {
    "step_id",
    "agent",
    "status",
    "attempts",
    "started_at",
    "finished_at",
    "input",
    "output",
    "error",
    "attempt_errors",
}


def test_runs_show_json_is_the_documented_envelope(worker: object) -> None:
    env = run(
        flow(
            [
                {"id": "a", "agent": "noop", "input": {"x": 1}},
                {"id": "b", "agent": "fail", "input": {"permanent": True}, "on_error": "continue"},
            ]
        )
    )
    result = CliRunner().invoke(cli, ["runs", "show", env.run_id, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) >= ENVELOPE_KEYS
    assert set(data["metadata"]) >= METADATA_KEYS
    assert [r["step_id"] for r in data["records"]] == ["a", "b"]
    assert all(set(r) >= RECORD_KEYS for r in data["records"])
    assert data["records"][0]["input"] == {"x": 1}
    assert data["records"][0]["output"] == {"ok": True, "echo": {"x": 1}}
    assert data["records"][1]["error"]["type"] == "PermanentAgentError"

    table = CliRunner().invoke(cli, ["runs", "show", env.run_id])
    assert table.exit_code == 0
    assert f"run {env.run_id}  flow test-flow v1  status SUCCEEDED" in table.output
    assert "PermanentAgentError: failing on purpose (attempt 1)" in table.output
    row = re.search(r'^a +noop +succeeded +1 +\d+ +(\{"x": 1\}) +\{"ok": true', table.output, re.MULTILINE)
    assert row is not None, table.output  # the input column, before the output


def test_runs_list_filters_and_unknown_run_is_one_line(worker: object) -> None:
    ok = run(flow([{"id": "a", "agent": "noop"}], name="listed-ok"))
    bad = run(flow([{"id": "a", "agent": "fail", "input": {"permanent": True}}], name="listed-bad"))
    listed = json.loads(CliRunner().invoke(cli, ["runs", "list", "--status", "failed", "--json"]).output)
    assert [r["run_id"] for r in listed] == [bad.run_id]
    by_flow = json.loads(CliRunner().invoke(cli, ["runs", "list", "--flow", "listed-ok", "--json"]).output)
    assert [r["run_id"] for r in by_flow] == [ok.run_id]
    missing = subprocess.run(
        [sys.executable, "-m", "orchestration.cli.main", "runs", "show", "no-such-run"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == ["error: run 'no-such-run' not found"]


def test_flow_files_in_json(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    path.write_text(json.dumps({"name": "json-flow", "version": 3, "steps": [{"id": "a", "agent": "noop"}]}))
    result = CliRunner().invoke(cli, ["flows", "validate", str(path)])
    assert result.exit_code == 0
    assert "ok (json-flow v3)" in result.output
    path.write_text("{not json")
    result = CliRunner().invoke(cli, ["flows", "validate", str(path)])
    assert result.exit_code == 1
    assert "f.json: not valid json" in result.output
