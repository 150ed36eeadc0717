"""Structured logs: every line a step writes carries run_id, step_id and agent; JSON lines when
CAMPAIGNFLOW_LOG_JSON is on, readable text otherwise; hooked in at worker start."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestration.control.manager import manager
from orchestration.engine import logs
from tests.support import services
from tests.support.background import CLI, ROOT, background, tail
from tests.support.runs import wait_for_run
from tests.support.wait import eventually

LEAD = {"email": "ada@acme-robotics.com", "name": "Ada", "title": "VP Marketing"}


def _record(message: str) -> logging.LogRecord:
    record = logging.LogRecord("agents.x", logging.WARNING, __file__, 1, message, (), None)
    logs.StepContextFilter().filter(record)
    return record


def test_formatters_carry_the_step_context_only_inside_a_step() -> None:
    token = logs.bind(logs.StepFields("run-1", "score", "score", "task-1"))
    try:
        inside = _record("scored %s")
    finally:
        logs.unbind(token)
    outside = _record("idle")

    line = json.loads(logs.JsonFormatter().format(inside))
    assert {k: line[k] for k in ("run_id", "step_id", "agent", "task_id", "level")} == {
        "run_id": "run-1", "step_id": "score", "agent": "score", "task_id": "task-1", "level": "WARNING",
    }  # fmt: skip
    assert "run_id" not in json.loads(logs.JsonFormatter().format(outside))
    text = logs.ReadableFormatter().format(inside)
    assert text.endswith("scored %s [run_id=run-1 step_id=score agent=score]")
    assert "run_id" not in logs.ReadableFormatter().format(outside)


@pytest.fixture
def step_lines() -> Iterator[io.StringIO]:
    """JSON lines of the ``campaignflow.steps`` logger, through our filter and formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.StepContextFilter())
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("campaignflow.steps")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_session_worker_step_lines_carry_run_step_agent(worker: object, step_lines: io.StringIO) -> None:
    handle = manager().ingest_event({"id": f"evt-{uuid.uuid4()}", "type": "lead.created", "payload": LEAD})
    env = wait_for_run(handle.run_id)
    assert env.status == "succeeded"

    agent_records = {
        r.step_id: r.agent
        for r in env.records
        if r.status == "succeeded" and not (r.agent or "").startswith("engine.")
    }
    assert len(agent_records) >= 3, env.records

    def step_lines_of_run() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in step_lines.getvalue().splitlines()]
        mine = [line for line in lines if line.get("run_id") == handle.run_id]
        assert len(mine) >= len(agent_records), mine
        return mine

    # the last step's line follows the run's terminal status
    mine = eventually(step_lines_of_run, 15, "a log line per agent step", interval=0.1)
    assert {(line["step_id"], line["agent"]) for line in mine} == set(agent_records.items())
    assert len(mine) == len(agent_records)
    assert all(line["message"].startswith("step try ended: success") for line in mine)
    assert all(line["task_id"] for line in mine)


def _json_lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for raw in path.read_text().splitlines():
        if raw.strip():
            try:
                out.append(json.loads(raw))
            except json.JSONDecodeError:
                pytest.fail(f"not a JSON line on the worker's stderr: {raw!r}")
    return out


def test_worker_process_writes_json_lines_with_step_fields(clean_db: str, tmp_path: Path) -> None:
    """A real ``campaignflow worker`` (own key prefix) with CAMPAIGNFLOW_LOG_JSON=true."""
    prefix = f"{services.new_schema_name('cf_logs')}:"
    env = {"CAMPAIGNFLOW_REDIS_KEY_PREFIX": prefix, "CAMPAIGNFLOW_LOG_JSON": "true"}
    out, err = tmp_path / "worker.out", tmp_path / "worker.err"
    event = {"id": f"evt-{uuid.uuid4()}", "type": "lead.created", "payload": LEAD}
    try:
        with background([*CLI, "worker", "--all", "-P", "threads", "-c", "2"], out, env, err=err):
            ingest = subprocess.run(
                [*CLI, "ingest", "-", "--wait", "--json", "--timeout", "60"],
                input=json.dumps(event), cwd=ROOT, env={**os.environ, **env},
                capture_output=True, text=True, timeout=90,
            )  # fmt: skip
        assert ingest.returncode == 0, ingest.stderr + tail(err)
        result = json.loads(ingest.stdout)
        assert result["status"] == "succeeded", tail(err)
    finally:
        services.clear_prefix(prefix)

    lines = _json_lines(err)
    assert any(line["message"].endswith("ready.") for line in lines), tail(err)
    steps = [line for line in lines if line.get("run_id") == result["run_id"]]
    assert steps, tail(err)
    for line in steps:
        assert line["step_id"]
        assert line["task_id"]
        assert line["ts"]
        assert line["level"]
    by_logger = {(line["logger"], line.get("agent")) for line in steps}
    for agent in ("enrich", "score", "crm_write"):
        assert ("celery.app.trace", agent) in by_logger, by_logger  # Celery's own "succeeded" line
        assert ("campaignflow.steps", agent) in by_logger, by_logger
    outside = [line for line in lines if "run_id" not in line]
    assert outside
    assert all("step_id" not in line for line in outside)
