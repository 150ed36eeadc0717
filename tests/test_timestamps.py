"""One timestamp format everywhere campaignflow prints a time: ISO 8601, UTC, ``Z``, six fraction
digits (``orchestration.timefmt.iso_utc``). Pinned here for the envelope JSON and the CLI lists."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from typer.testing import CliRunner

from orchestration.cli.main import cli
from orchestration.control.manager import manager
from orchestration.control.rejected import EventRejectedError
from orchestration.envelope import Envelope, RunMetadata, StepError
from orchestration.timefmt import as_utc, iso_utc
from tests.support.flows import flow, run

#: The one format: 2026-12-01T09:30:00.123456Z
STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def test_iso_utc_is_utc_with_z_and_six_fraction_digits() -> None:
    assert iso_utc(datetime(2026, 12, 1, 9, 30, 0, 123456, tzinfo=UTC)) == "2026-12-01T09:30:00.123456Z"
    assert iso_utc(datetime(2026, 12, 1, 9, 30, tzinfo=UTC)) == "2026-12-01T09:30:00.000000Z"
    paris = timezone(timedelta(hours=1))
    assert iso_utc(datetime(2026, 12, 1, 10, 30, tzinfo=paris)) == "2026-12-01T09:30:00.000000Z"
    # naive values (SQLite keeps no zone) and naive text are read as UTC
    assert iso_utc(datetime(2026, 12, 1, 9, 30)) == "2026-12-01T09:30:00.000000Z"  # noqa: DTZ001
    assert iso_utc("2026-12-01 09:30:00.5") == "2026-12-01T09:30:00.500000Z"
    assert iso_utc("2026-12-01T10:30:00+01:00") == "2026-12-01T09:30:00.000000Z"
    assert iso_utc(iso_utc(datetime(2026, 12, 1, tzinfo=UTC))) == "2026-12-01T00:00:00.000000Z"
    assert iso_utc(None) is None
    assert as_utc(datetime(2026, 12, 1)).tzinfo is UTC  # noqa: DTZ001


def test_envelope_model_reads_naive_as_utc_and_writes_the_format() -> None:
    meta = RunMetadata(flow_version="1", mode="inline", created_at=datetime(2026, 12, 1, 9, 30))  # noqa: DTZ001
    assert meta.created_at == datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    dumped = meta.model_dump(mode="json")
    assert dumped["created_at"] == "2026-12-01T09:30:00.000000Z"
    assert dumped["started_at"] is None
    err = StepError.model_validate({"type": "X", "message": "m", "at": "2026-12-01T10:30:00.25+01:00"})
    assert err.model_dump(mode="json")["at"] == "2026-12-01T09:30:00.250000Z"
    # the JSON reads back to the same instants
    env = Envelope(run_id="r", flow="f", status="queued", metadata=meta, records=[])
    assert Envelope.model_validate_json(env.model_dump_json()) == env


def _times(data: Any, key: str = "") -> list[tuple[str, Any]]:
    """Every (key, value) whose key names a time (``*_at`` or ``at``), anywhere in ``data``."""
    if isinstance(data, dict):
        found = [(k, v) for k, v in data.items() if k == "at" or k.endswith("_at")]
        return found + [t for v in data.values() for t in _times(v)]
    if isinstance(data, list):
        return [t for v in data for t in _times(v)]
    return []


def test_runs_show_json_and_runs_list_print_the_format(worker: object) -> None:
    f = flow(
        [
            {"id": "ok", "agent": "noop"},
            {
                "id": "flaky",
                "agent": "fail",
                "input": {"fail_attempts": 1},
                "retry": {"max_attempts": 2, "backoff_seconds": 0.05, "jitter": False},
            },
        ],
        name="stamped",
    )
    env = run(f)
    assert env.status == "succeeded"
    runner = CliRunner()

    shown = runner.invoke(cli, ["runs", "show", env.run_id, "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    times = dict(_times(data["metadata"]))
    for key in ("created_at", "started_at", "finished_at"):
        assert STAMP.match(times[key]), (key, times[key])
    for record in data["records"]:
        assert STAMP.match(record["started_at"]), record
        assert STAMP.match(record["finished_at"]), record
    attempt_errors = data["records"][1]["attempt_errors"]
    assert len(attempt_errors) == 1, attempt_errors
    assert STAMP.match(attempt_errors[0]["at"]), attempt_errors
    assert all(v is None or STAMP.match(v) for _, v in _times(data)), _times(data)

    text = runner.invoke(cli, ["runs", "show", env.run_id]).stdout
    assert f"created {times['created_at']}  started {times['started_at']}" in text

    listed = json.loads(runner.invoke(cli, ["runs", "list", "--flow", "stamped", "--json"]).stdout)
    assert [r["created_at"] for r in listed] == [times["created_at"]]
    assert STAMP.match(listed[0]["finished_at"])

    table = runner.invoke(cli, ["runs", "list", "--flow", "stamped"])
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["run_id", "flow", "status", "campaign", "event", "created"]
    row = next(line.split() for line in lines if line.startswith(env.run_id))
    assert row == [env.run_id, "stamped", "succeeded", times["created_at"]]
    assert "\x1b[" not in table.stdout  # no colour codes when the output is not a terminal

    # a printed timestamp can be pasted back into --since
    since = runner.invoke(cli, ["runs", "list", "--since", times["created_at"], "--json"])
    assert since.exit_code == 0, since.output
    assert env.run_id in [r["run_id"] for r in json.loads(since.stdout)]


def test_rejected_events_print_the_format() -> None:
    with pytest.raises(EventRejectedError):
        manager().ingest_event({"id": "stamp-1", "type": "no.such.type", "payload": {}})
    runner = CliRunner()
    listed = json.loads(runner.invoke(cli, ["rejected", "list", "--json"]).stdout)
    assert [r["event_id"] for r in listed] == ["stamp-1"]
    assert STAMP.match(listed[0]["created_at"])
    assert listed[0]["replayed_at"] is None
    table = runner.invoke(cli, ["rejected", "list"]).stdout
    row = next(line.split() for line in table.splitlines() if "stamp-1" in line)
    assert row[:4] == [str(listed[0]["id"]), "stamp-1", "rejected", listed[0]["created_at"]]
