"""``campaignflow doctor`` against the real services: all ok with the session worker and a beat tick,
and FAIL (exit 1) for what a broken deployment looks like."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from orchestration.cli.main import cli
from tests.support import services
from tests.support.agents import ISOLATED_QUEUE
from tests.support.wiring import app, registry
from tests.support.workers import WorkerProcess

CLI = [sys.executable, "-m", "orchestration.cli.main"]


def doctor_here(*args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(cli, ["doctor", "--json", *args])
    return result.exit_code, json.loads(result.stdout)


def doctor_subprocess(env: dict[str, str]) -> tuple[int, dict[str, dict[str, str]]]:
    proc = subprocess.run([*CLI, "doctor", "--json"], env=env, capture_output=True, text=True, timeout=120)
    report = json.loads(proc.stdout)
    return proc.returncode, {c["name"]: c for c in report["checks"]}


def test_all_ok_with_workers_and_a_beat_tick(worker: object, tmp_path: Path) -> None:
    # the session worker leaves the crash tests' queue alone; a real worker process takes it here
    extra = WorkerProcess("doctor-isolated", [ISOLATED_QUEUE], log_dir=tmp_path).start()
    try:
        extra.wait_ready()
        # no tick yet (empty tables): a warning, or a failure when beat is required
        no_tick = doctor_here()
        no_tick_required = doctor_here("--require-beat")
        # the real campaign tick (what beat sends) writes the "beat" heartbeat
        app.send_task("campaignflow.campaign_tick").get(timeout=30, interval=0.05)
        code, report = doctor_here("--require-beat")
    finally:
        extra.stop()

    assert (no_tick[0], beat_of(no_tick[1])["status"]) == (0, "warn"), no_tick
    assert "campaignflow beat" in beat_of(no_tick[1])["detail"]
    assert (no_tick_required[0], beat_of(no_tick_required[1])["status"]) == (1, "FAIL")
    assert no_tick_required[1]["ok"] is False

    assert code == 0, report
    assert report["ok"] is True
    checks = {c["name"]: c for c in report["checks"]}
    assert list(checks) == ["broker", "database", "migrations", "consumers", "beat", "outbox"]
    assert {c["status"] for c in checks.values()} == {"ok"}, report
    for queue in registry.queue_names():
        assert queue in checks["consumers"]["detail"]
    assert "beat" in checks["beat"]["detail"]


def beat_of(report: dict[str, Any]) -> dict[str, str]:
    return next(c for c in report["checks"] if c["name"] == "beat")


def test_closed_broker_and_unmigrated_schema_fail(tmp_path: Path) -> None:
    services.check_services()
    schema = services.new_schema_name("cf_doctor")
    services.create_schema(schema)  # exists, but no migration ran
    env = {
        **os.environ,
        "CAMPAIGNFLOW_BROKER_URL": "redis://127.0.0.1:1/0",
        "CAMPAIGNFLOW_RESULT_BACKEND": "redis://127.0.0.1:1/1",
        "CAMPAIGNFLOW_DATABASE_URL": services.schema_url(schema),
    }
    try:
        code, checks = doctor_subprocess(env)
    finally:
        services.drop_schema(schema)

    assert code == 1
    assert checks["broker"]["status"] == "FAIL"
    assert "127.0.0.1:1" in checks["broker"]["detail"]
    assert checks["database"]["status"] == "ok"
    assert checks["migrations"]["status"] == "FAIL"
    assert "campaignflow db upgrade" in checks["migrations"]["detail"]
    assert checks["consumers"]["status"] == "FAIL"
    assert checks["beat"]["status"] == "warn"


def test_a_queue_nobody_consumes_fails(worker: object, tmp_path: Path) -> None:
    """An agent on a pool with no worker: its queue is routed, so doctor must say nobody consumes it."""
    (tmp_path / "doctor_orphan_pool.py").write_text(
        textwrap.dedent(
            """
            from pydantic import BaseModel
            from orchestration.registry import AgentSpec

            class Empty(BaseModel):
                pass

            def orphan(inp, ctx):
                return Empty()

            def register(registry):
                registry.add_agent(AgentSpec(
                    name="orphan", handler=orphan, input_model=Empty, output_model=Empty, pool="orphan"
                ))
            """
        )
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])),
        "CAMPAIGNFLOW_PLUGINS": f"{os.environ.get('CAMPAIGNFLOW_PLUGINS', '')},doctor_orphan_pool",
    }
    code, checks = doctor_subprocess(env)

    assert code == 1
    assert checks["consumers"]["status"] == "FAIL"
    assert "agents.orphan" in checks["consumers"]["detail"]
    assert "--pool" in checks["consumers"]["detail"]
    assert "orphan" in checks["consumers"]["detail"]
    assert [checks[n]["status"] for n in ("broker", "database", "migrations")] == ["ok"] * 3
