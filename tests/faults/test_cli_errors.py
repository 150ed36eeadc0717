"""Every error of the command line is one line naming the problem and the fix, never a traceback;
usage errors exit 2, other failures 1; with ``--json`` the error is JSON on stdout. Run in-process
with Typer's runner (the same ``main`` as the installed command) and, where a fresh process matters
(plugins, the broker), as a subprocess."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import orchestration
from orchestration.cli.errors import describe
from orchestration.cli.main import cli
from orchestration.control.manager import Route, add_route
from orchestration.engine.deadletters import dead_letter
from orchestration.names import CANCEL_RUN_TASK, ENGINE_QUEUE
from orchestration.store import deadletters, sql_engine
from tests.support.runs import wait_for_run
from tests.support.wiring import flows

ROOT = Path(__file__).resolve().parents[2]


def invoke(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin)


def one_error_line(result: Result) -> str:
    """The one ``error:`` line on stderr (and no traceback anywhere)."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0][len("error: ") :]


def json_error(result: Result) -> dict[str, str]:
    data = json.loads(result.stdout)
    assert set(data) == {"error"}, data
    assert set(data["error"]) == {"code", "message"}, data
    error: dict[str, str] = data["error"]
    return error


def cli_process(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )


def bad_files(tmp_path: Path) -> dict[str, tuple[Path, int, str]]:
    """Each kind of bad file: its path, the exit code, what the one line says."""
    (tmp_path / "latin1.json").write_bytes('{"id": "café"}'.encode("latin-1"))
    (tmp_path / "nul.json").write_bytes(b'{"id": "a\x00"}')
    (tmp_path / "deep.json").write_text("[" * 10_000 + "]" * 10_000, encoding="utf-8")
    (tmp_path / "broken.json").write_text('{"id": ', encoding="utf-8")
    (tmp_path / "a-directory").mkdir()
    return {
        "missing": (tmp_path / "missing.json", 2, "no such file; check the path"),
        "directory": (tmp_path / "a-directory", 2, "is a directory; give a file"),
        "not utf-8": (
            tmp_path / "latin1.json",
            1,
            "not UTF-8 text (byte 0xe9 at offset 11); save it as UTF-8",
        ),
        "nul byte": (tmp_path / "nul.json", 1, "holds a NUL byte at offset 9"),
        "10,000 levels": (tmp_path / "deep.json", 1, "JSON nested too deeply to read; flatten it"),
        "broken json": (tmp_path / "broken.json", 1, "not valid JSON (Expecting value at line 1 column 8)"),
    }


@pytest.mark.parametrize(
    "kind", ["missing", "directory", "not utf-8", "nul byte", "10,000 levels", "broken json"]
)
def test_a_bad_event_file_is_one_line_with_the_fix(tmp_path: Path, kind: str) -> None:
    path, code, says = bad_files(tmp_path)[kind]
    result = invoke("ingest", str(path))
    assert result.exit_code == code
    assert one_error_line(result).startswith(f"{path}: {says}")
    as_json = invoke("ingest", str(path), "--json")
    assert as_json.exit_code == code
    assert as_json.stderr == ""
    error = json_error(as_json)
    assert error["code"] == ("usage" if code == 2 else "invalid_input")
    assert says in error["message"]


def test_bad_files_given_to_other_commands_are_one_line_too(tmp_path: Path) -> None:
    files = bad_files(tmp_path)
    nul, latin1, directory = (files[k][0] for k in ("nul byte", "not utf-8", "directory"))
    cases = [
        (["runs", "retry", "any-run", "--patch", f"@{nul}"], 1, f"--patch @{nul}: holds a NUL byte"),
        (["rejected", "replay", "1", "--event", str(latin1)], 1, f"--event {latin1}: not UTF-8 text"),
        (["campaigns", "add", "--file", str(directory)], 2, f"--file {directory}: is a directory"),
        (
            ["flows", "graph", "x", "--file", str(files["missing"][0])],
            1,
            f"{files['missing'][0]}: No such file",
        ),
    ]
    for args, code, says in cases:
        result = invoke(*args)
        assert result.exit_code == code, (args, result.output)
        assert one_error_line(result).startswith(says), (args, result.stderr)
    flow_file = invoke("flows", "validate", str(latin1))
    assert flow_file.exit_code == 1
    assert "not UTF-8 text" in flow_file.stderr


@pytest.mark.parametrize(
    ("args", "choices"),
    [
        (
            ["runs", "list", "--status", "bogus"],
            "'queued', 'running', 'waiting', 'succeeded', 'failed', 'cancelled'",
        ),
        (["rejected", "list", "--status", "bogus"], "'rejected', 'replayed', 'all'"),
        (["deadletters", "list", "--status", "bogus"], "'dead', 'replayed', 'all'"),
        (["worker", "--all", "-P", "bogus"], "'prefork', 'threads', 'solo'"),
    ],
)
def test_choices_are_checked_before_anything_runs(args: list[str], choices: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "'bogus' is not one of " + choices in line, line
    assert line.endswith("--help'"), line
    assert json_error(invoke(*args, "--json"))["code"] == "usage"


def test_usage_errors_exit_2_and_failures_exit_1(clean_db: str) -> None:
    unknown = invoke("runs", "frobnicate")
    assert unknown.exit_code == 2
    assert "No such command 'frobnicate'" in one_error_line(unknown)
    missing = invoke("runs", "show", "no-such-run")
    assert missing.exit_code == 1
    assert one_error_line(missing) == "run 'no-such-run' not found"
    assert json_error(invoke("runs", "show", "no-such-run", "--json")) == {
        "code": "not_found",
        "message": "run 'no-such-run' not found",
    }


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout == f"campaignflow {orchestration.__version__}\n"
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert f'version = "{orchestration.__version__}"' in pyproject


def test_an_unexpected_error_says_it_is_a_bug_and_how_to_see_the_traceback() -> None:
    problem = describe(ZeroDivisionError("division by zero"))
    assert (problem.code, problem.exit_code) == ("internal", 1)
    assert problem.message.startswith("unexpected ZeroDivisionError: division by zero; this is a bug")
    assert "campaignflow --traceback" in problem.message


def test_a_bad_plugin_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    missing = cli_process("runs", "list", CAMPAIGNFLOW_PLUGINS="no.such.module")
    assert missing.returncode == 1
    assert missing.stdout == ""
    assert missing.stderr.strip().splitlines() == [
        "error: module 'no.such.module' (CAMPAIGNFLOW_AGENT_MODULES / CAMPAIGNFLOW_PLUGINS) cannot be "
        "imported: No module named 'no'; check the name and that it is installed"
    ]
    (tmp_path / "broken_plugin.py").write_text("raise RuntimeError('half written')\n", encoding="utf-8")
    broken = cli_process(
        "runs", "list", "--json", CAMPAIGNFLOW_PLUGINS="broken_plugin", PYTHONPATH=str(tmp_path)
    )
    assert broken.returncode == 1
    assert broken.stderr == ""
    assert json.loads(broken.stdout)["error"] == {
        "code": "configuration",
        "message": "module 'broken_plugin' (CAMPAIGNFLOW_AGENT_MODULES / CAMPAIGNFLOW_PLUGINS) failed while "
        "importing: RuntimeError: half written; fix the module or remove it from the setting",
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class Message:
    """A task message as the worker's consumer sees it (the fields a dead letter keeps)."""

    def __init__(self, body: bytes, headers: dict[str, Any]) -> None:
        self.body, self.headers = body, headers
        self.delivery_info = {"routing_key": ENGINE_QUEUE}
        self.content_type, self.content_encoding = "application/json", "utf-8"


def test_an_unreachable_broker_is_one_line(clean_db: str) -> None:
    body = json.dumps([[], {"run_id": "r-1"}, {}]).encode()
    values = dead_letter(Message(body, {"task": CANCEL_RUN_TASK, "id": "t-1"}), KeyError(CANCEL_RUN_TASK))
    with sql_engine().begin() as conn:
        letter_id = deadletters.record(conn, values)
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = cli_process("deadletters", "replay", str(letter_id), CAMPAIGNFLOW_BROKER_URL=url)
    assert result.returncode == 1, result.stderr
    assert result.stdout == "", result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: broker not reachable at {url} ("), line
    assert line.endswith("check CAMPAIGNFLOW_BROKER_URL and that the broker runs"), line


NOOP = {"name": "cli-noop", "steps": [{"id": "a", "agent": "noop"}]}
FAILING = {"name": "cli-failing", "steps": [{"id": "a", "agent": "fail", "input": {"permanent": True}}]}
SLOW = {"name": "cli-slow", "steps": [{"id": "a", "agent": "sleep", "input": {"seconds": 1.5}}]}


@pytest.fixture
def cli_routes(worker: object) -> None:
    for flow in (NOOP, FAILING, SLOW):
        flows().add(flow)
        add_route(Route(event_type=f"test.{flow['name']}", flow=str(flow["name"])))


def event_file(tmp_path: Path, flow: str, event_id: str) -> str:
    path = tmp_path / f"{event_id}.json"
    path.write_text(json.dumps({"id": event_id, "type": f"test.{flow}", "payload": {}}), encoding="utf-8")
    return str(path)


def test_ingest_json_answers_a_rejected_event_and_exits_1(cli_routes: None, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"id": "evt-cli-bad", "type": "nobody.listens", "payload": {}}), "utf-8")
    result = invoke("ingest", str(path), "--json")
    assert result.exit_code == 1
    assert result.stderr == ""
    answer = json.loads(result.stdout)
    assert answer["status"] == "rejected"
    assert answer["run_id"] is None
    assert answer["reason"] == "no_route"
    assert answer["rejected_id"] > 0
    assert "rejected event" in answer["error"]
    listed = invoke("ingest", "-", "--json", stdin=json.dumps([json.loads(path.read_text()), {"id": "x"}]))
    assert [r["status"] for r in json.loads(listed.stdout)] == ["rejected", "rejected"]


def test_ingest_wait_exits_1_when_a_run_fails_or_the_wait_times_out(cli_routes: None, tmp_path: Path) -> None:
    ok = invoke("ingest", event_file(tmp_path, "cli-noop", "evt-cli-ok"), "--wait")
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.strip().endswith(" succeeded"), ok.output

    failed = invoke("ingest", event_file(tmp_path, "cli-failing", "evt-cli-failed"), "--wait")
    assert failed.exit_code == 1
    run_id = failed.stdout.split()[0]
    assert one_error_line(failed) == f"run {run_id} failed; see `campaignflow runs show {run_id}`"
    synced = invoke("ingest", event_file(tmp_path, "cli-failing", "evt-cli-sync"), "--sync", "--json")
    assert synced.exit_code == 1
    assert json.loads(synced.stdout)["status"] == "failed"

    slow = invoke("ingest", event_file(tmp_path, "cli-slow", "evt-cli-slow"), "--wait", "--timeout", "0.2")
    assert slow.exit_code == 1
    slow_id = slow.stdout.split()[0]
    assert "still " in one_error_line(slow)
    assert "after 0.2s; wait longer (--timeout)" in one_error_line(slow)
    assert wait_for_run(slow_id).status == "succeeded"  # it went on; only the wait ended
