"""Durable time in the embedded default (SQLite run store, in-memory broker, no beat): the worker
threads come with the timer poller, so a sleeping run wakes and a waiting one takes its signal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.workers import ROOT

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from orchestration.control.signals import signal_run
    from orchestration.ops.embedded import embedded_worker, use_embedded, wait_terminal
    from orchestration.orchestrators.base import FlowRunner
    from orchestration.flows import parse_flow
    from orchestration.settings import get_settings
    from orchestration.store import migrate

    runtime, _ = use_embedded(Path(sys.argv[1]))
    migrate.upgrade(get_settings().effective_database_url())
    flow = parse_flow({"name": "embedded-waits", "steps": [
        {"id": "a", "agent": "noop"},
        {"kind": "sleep", "id": "nap", "for": "1s"},
        {"kind": "wait", "id": "ok", "signal": "approval"},
        {"id": "b", "agent": "noop"},
    ]}, runtime.registry)
    with embedded_worker():
        handle = FlowRunner(runtime.engine, flow).run({}, mode="async")
        kept = signal_run(handle.run_id, "approval", {"by": "ana"})
        [env] = wait_terminal([handle.run_id], timeout=60)
    print(json.dumps({"kept": kept.resumed, "status": env.status, "steps": [r.status for r in env.records]}))
    """
)


def test_a_sleep_and_a_signal_work_embedded(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGNFLOW_")}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "data")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,  # a hang guard, not an assertion on speed
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"kept": False, "status": "succeeded", "steps": ["succeeded"] * 4}
