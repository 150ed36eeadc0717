"""``campaignflow demo`` on a bare machine: no CAMPAIGNFLOW_* URLs, no reachable Redis or Postgres.

Each test runs the real command in a subprocess with a scrubbed environment and its own working
directory, so nothing of the test session (its broker, its database) can leak in.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from orchestration.ops.embedded import default_events_dir, load_events

#: Anything that could point a client at a server is aimed at closed ports.
UNREACHABLE = {
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/test",
    "PGHOST": "127.0.0.1",
    "PGPORT": "1",
}


def bare_env(home: Path, **extra: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8"}
    env.update(UNREACHABLE)
    env.update(extra)
    return env


def run_demo(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli.main", "demo", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,  # a hang guard, not an assertion on speed
    )


def test_demo_runs_every_sample_event_embedded(tmp_path: Path) -> None:
    events = load_events(default_events_dir())
    assert len(events) >= 3

    proc = run_demo(tmp_path, bare_env(tmp_path))

    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert out.count("status SUCCEEDED") == len(events), out
    assert f"runs: {len(events)} ({len(events)} succeeded)" in out
    assert "flowchart TD" in out  # the flow's Mermaid graph
    assert "again: the same run" in out  # re-ingesting an event is idempotent
    assert "elapsed:" in out
    for event in events:
        assert f"event {event['id']}-" in out
    # the default data dir, relative to the working directory; built by the migrations
    db = tmp_path / ".campaignflow" / "campaignflow.db"
    with sqlite3.connect(db) as conn:
        runs = conn.execute("select status, count(*) from run group by status").fetchall()
        contacts = conn.execute("select count(*) from crm_contact").fetchone()[0]
        version = conn.execute("select version_num from alembic_version").fetchall()
    assert runs == [("succeeded", len(events))]
    assert contacts >= 1  # crm_write upserted into SQLite
    assert len(version) == 1


def test_demo_json_fresh_ignores_configured_servers(tmp_path: Path) -> None:
    env = bare_env(
        tmp_path,
        CAMPAIGNFLOW_BROKER_URL="redis://127.0.0.1:1/0",
        CAMPAIGNFLOW_DATABASE_URL="postgresql://postgres@127.0.0.1:1/test",
    )
    proc = run_demo(tmp_path, env, "--fresh", "--json")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    assert report["ignored_settings"] == ["CAMPAIGNFLOW_BROKER_URL", "CAMPAIGNFLOW_DATABASE_URL"]
    assert report["database_url"].startswith("sqlite:///")
    assert not (tmp_path / ".campaignflow").exists()  # --fresh: a temporary data dir, removed
    runs = report["runs"]
    assert len(runs) == len(load_events(default_events_dir()))
    for env_ in runs:
        assert env_["status"] == "succeeded", env_
        assert env_["metadata"]["mode"] == "async"
        assert env_["records"], env_
        assert {r["status"] for r in env_["records"]} <= {"succeeded", "skipped"}
        assert env_["records"][0]["agent"] == "enrich"
    assert report["duplicate"]["duplicate"] is True
    assert report["duplicate"]["run_id"] == runs[0]["run_id"]
    assert report["rows"]["crm_contact"] >= 1
    assert set(report["graphs"]) == {r["flow"] for r in runs}
