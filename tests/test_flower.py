"""``campaignflow flower``: refuses to start without auth, and with auth shows the tasks of a real
run (events from the session worker) to an authenticated browser, while the API without
credentials answers 401."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestration.control.manager import manager
from orchestration.errors import ConfigurationError
from orchestration.ops import flower as flower_plan
from tests.support.background import CLI, ROOT, background, free_port, tail, wait_http
from tests.support.runs import wait_for_run
from tests.support.wait import eventually

AGENT_TASKS = {"campaignflow.agent.enrich", "campaignflow.agent.score", "campaignflow.agent.crm_write"}


def _run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "CAMPAIGNFLOW_FLOWER_BASIC_AUTH"}
    return subprocess.run(
        [*CLI, *args], cwd=ROOT, env={**full_env, **env}, capture_output=True, text=True, timeout=60
    )


def test_refuses_to_start_without_auth_setting() -> None:
    result = _run_cli("flower", "--port", str(free_port()))

    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "CAMPAIGNFLOW_FLOWER_BASIC_AUTH is not set" in lines[0]
    assert "--no-auth" in lines[0]


def test_rejects_malformed_auth_without_echoing_it() -> None:
    result = _run_cli("flower", CAMPAIGNFLOW_FLOWER_BASIC_AUTH="ops:ok,only-a-user-Zq8")

    assert result.returncode == 2
    assert "CAMPAIGNFLOW_FLOWER_BASIC_AUTH: entry 2 is not user:password" in result.stderr
    assert "Zq8" not in result.stderr


def test_plan_passes_auth_by_environment_and_defaults_to_read_only() -> None:
    plan = flower_plan.plan("ops:secret", port=5601, max_tasks=500, purge_offline_workers=60)

    assert plan.env == {"FLOWER_BASIC_AUTH": "ops:secret"}
    assert not any("secret" in arg for arg in plan.argv)
    assert plan.argv[0] == "flower"
    for arg in ("--port=5601", "--max_tasks=500", "--purge_offline_workers=60", "--enable_events=True"):
        assert arg in plan.argv
    assert "--read_only=True" in plan.argv
    assert "--read_only=False" in flower_plan.plan("ops:secret", allow_control=True).argv


def test_plan_without_auth_is_on_purpose_only_and_read_only() -> None:
    open_plan = flower_plan.plan(None, no_auth=True)
    assert not open_plan.authenticated
    assert open_plan.read_only
    assert "FLOWER_UNAUTHENTICATED_API" in open_plan.unset
    assert "FLOWER_BASIC_AUTH" in open_plan.unset
    with pytest.raises(ConfigurationError, match="--allow-control"):
        flower_plan.plan(None, no_auth=True, allow_control=True)
    with pytest.raises(ConfigurationError, match="--no-auth"):
        flower_plan.plan("ops:secret", no_auth=True)


def test_no_auth_opens_read_only_pages_but_keeps_the_api_closed(tmp_path: Path) -> None:
    """Even with FLOWER_UNAUTHENTICATED_API=true in the environment, --no-auth serves no API."""
    port, log = free_port(), tmp_path / "flower.log"
    env = {"CAMPAIGNFLOW_FLOWER_BASIC_AUTH": None, "FLOWER_UNAUTHENTICATED_API": "true"}
    with background([*CLI, "flower", "--no-auth", "--port", str(port)], log, env) as proc:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthcheck", proc, log)
        assert _get(f"{base}/api/workers")[0] == 401
        status, page = _get(f"{base}/tasks")
        assert status == 200
        assert b"<title>Tasks" in page
        assert _get(f"{base}/api/task/revoke/x", method="POST")[0] == 401
    assert "NO AUTH, read-only" in tail(log)


def _get(url: str, auth: str | None = None, method: str = "GET") -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:  # the error holds the response and its socket
            return exc.code, exc.read()


def chromium(*args: str) -> subprocess.CompletedProcess[bytes]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("chromium is not installed; run: sudo bash scripts/setup-system.sh")
    with tempfile.TemporaryDirectory() as profile:
        argv = [
            binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync", "--hide-scrollbars",
            f"--user-data-dir={profile}", "--virtual-time-budget=8000", *args,
        ]  # fmt: skip
        return subprocess.run(argv, capture_output=True, timeout=120, check=False)


@pytest.fixture
def flower(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Flower for the session's app (same key prefix, so it sees the session worker's events)."""
    port = free_port()
    auth = f"ops:{uuid.uuid4().hex}"
    log = tmp_path / "flower.log"
    argv = [*CLI, "flower", "--port", str(port), "--max-tasks", "1000", "--purge-offline-workers", "60"]
    with background(argv, log, {"CAMPAIGNFLOW_FLOWER_BASIC_AUTH": auth}) as proc:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthcheck", proc, log)
        yield base, auth
    assert "Traceback" not in tail(log, 20000), tail(log)


def _tasks_of(base: str, auth: str, run_id: str) -> dict[str, dict[str, Any]]:
    status, body = _get(f"{base}/api/tasks?limit=1000", auth)
    assert status == 200, body
    tasks: dict[str, dict[str, Any]] = json.loads(body)
    return {t["name"]: t for t in tasks.values() if run_id in str(t.get("kwargs"))}


def _run_seen_by_flower(base: str, auth: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """Run a lead flow until Flower has every agent task of one run (its event receiver may
    subscribe a moment after the HTTP server answers, so an early run can be missed)."""
    missed: list[AssertionError] = []
    for _ in range(3):
        lead = {"email": "grace@hopper-labs.com", "name": "Grace", "title": "CTO"}
        handle = manager().ingest_event(
            {"id": f"evt-{uuid.uuid4()}", "type": "lead.created", "payload": lead}
        )
        assert wait_for_run(handle.run_id).status == "succeeded"

        def all_listed(run_id: str = handle.run_id) -> dict[str, dict[str, Any]]:
            seen = _tasks_of(base, auth, run_id)
            states = {name: seen[name]["state"] if name in seen else None for name in AGENT_TASKS}
            assert all(state == "SUCCESS" for state in states.values()), states
            return seen

        try:
            return handle.run_id, eventually(
                all_listed, 15, f"Flower to list run {handle.run_id}", interval=0.3
            )
        except AssertionError as exc:
            missed.append(exc)
    raise AssertionError(f"Flower never listed all of {sorted(AGENT_TASKS)} for one run: {missed[-1]}")


def test_flower_shows_run_tasks_only_with_credentials(
    worker: object, flower: tuple[str, str], tmp_path: Path
) -> None:
    base, auth = flower

    assert _get(f"{base}/api/workers")[0] == 401
    assert _get(f"{base}/api/tasks")[0] == 401
    assert _get(f"{base}/tasks")[0] == 401
    assert _get(f"{base}/api/tasks", "ops:wrong-password")[0] == 401
    status, metrics = _get(f"{base}/metrics")  # Flower's own metrics are never authenticated
    assert status == 200
    assert b"flower_events_total" in metrics

    _run_id, seen = _run_seen_by_flower(base, auth)

    user, password = auth.split(":", 1)
    page = f"http://{user}:{password}@{base.removeprefix('http://')}/tasks"
    dom = chromium("--dump-dom", page)
    html = dom.stdout.decode(errors="replace")
    assert "<title>Tasks" in html, dom.stderr.decode(errors="replace")[-2000:]
    for name in AGENT_TASKS:  # the run's own tasks, by name and by task id
        assert name in html, f"{name} of the run not on the tasks page"
        assert seen[name]["uuid"] in html, f"{name}'s task id not on the tasks page"
    assert "Access denied" not in html

    denied = chromium("--dump-dom", f"{base}/tasks").stdout.decode(errors="replace")
    assert "campaignflow.agent." not in denied

    shot = Path(os.environ.get("SCREENSHOT_TO", tmp_path / "flower-tasks.png"))
    shot.parent.mkdir(parents=True, exist_ok=True)
    chromium(f"--screenshot={shot}", "--window-size=1400,900", page)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    assert len(data) > 20_000, len(data)
