"""The bad events of ``test_bad_events`` again, this time written to a file and given to
``campaignflow ingest --json``: each one is answered as rejected with the field that is wrong, the
command exits 1 without a traceback, and the stored rejected event reads back as it was sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from orchestration.cli.main import cli
from orchestration.control.manager import Route
from orchestration.control.rejected import get_rejected
from tests.faults.test_bad_events import CASES, bad_route

__all__ = ["bad_route"]  # the fixture, shared with the send_task path

# JSON text cannot hold NaN or infinity (the file would not be JSON), and the CLI reads a file whose
# top level is a list as a batch: those cases are the send_task path's alone.
FILE_CASES = [c for c in CASES if c[0] not in {"nan in the payload", "infinity in the payload"}]


@pytest.mark.parametrize(("body", "problem"), [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES])
def test_bad_events_in_a_file_are_rejected_and_stored_as_sent(
    bad_route: Route, tmp_path: Path, body: Any, problem: str
) -> None:
    path = tmp_path / "event.json"
    # ensure_ascii keeps NUL characters and lone surrogates as escapes, so the file is valid UTF-8
    path.write_text(json.dumps(body), encoding="utf-8")
    result = CliRunner().invoke(cli, ["ingest", str(path), "--json"])
    assert "Traceback" not in result.output
    assert result.exit_code == 1, result.output
    assert result.stderr == ""
    answer = json.loads(result.stdout)
    assert (answer["status"], answer["run_id"], answer["reason"]) == ("rejected", None, "invalid_event"), (
        answer
    )
    assert problem in answer["error"], answer["error"]
    row = get_rejected(answer["rejected_id"])
    assert any(problem in p for p in row.problems), row.problems
    assert row.raw == body
