"""The public tasks: pinned names on the ``orchestration`` queue, called with ``send_task`` from a
separate process whose Celery app knows nothing of this project, and through ``orchestration.client``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from celery.result import AsyncResult

from orchestration.client import CampaignflowClient
from orchestration.control.manager import Route, add_route
from orchestration.names import ENGINE_QUEUE, PUBLIC_TASKS
from tests.support.agents import ledger
from tests.support.figures import figure
from tests.support.runs import envelope, record, wait_for_run
from tests.support.wait import eventually
from tests.support.wiring import app, flows, registry

DOCUMENTED = {
    "campaignflow.ingest_event",
    "campaignflow.cancel_run",
    "campaignflow.retry_run",
    "campaignflow.campaign_tick",
    "campaignflow.signal_run",
}

OUTSIDER = textwrap.dedent(
    """
    import json, sys
    from celery import Celery

    broker, backend, prefix, calls_file = sys.argv[1:5]
    app = Celery("outsider", broker=broker, backend=backend)
    app.conf.update(
        task_serializer="json", result_serializer="json",
        accept_content=["json"], result_accept_content=["json"],
        broker_transport_options={"global_keyprefix": prefix},
        result_backend_transport_options={"global_keyprefix": prefix},
    )
    results = []
    for name, kwargs in json.load(open(calls_file)):
        results.append(app.send_task(name, kwargs=kwargs, queue="orchestration").get(timeout=60))
    ours = sorted(m for m in sys.modules if m.split(".")[0] in ("orchestration", "tasks", "agents", "celeryconfig"))
    print(json.dumps({"results": results, "project_modules": ours}))
    """
)

FLAKY = {
    "name": "public-flaky",
    "steps": [
        {"id": "a", "agent": "effect"},
        {"id": "b", "agent": "fail", "input": {"permanent": True, "fail_attempts": "$payload.fail_attempts"}},
    ],
}
SLOW = {
    "name": "public-slow",
    "steps": [{"id": "s1", "agent": "sleep", "input": {"seconds": 1.5}}, {"id": "s2", "agent": "effect"}],
}


def test_public_names_are_pinned_and_on_the_orchestration_queue() -> None:
    app.loader.import_default_modules()
    top_level = {name for name in app.tasks if re.fullmatch(r"campaignflow\.[a-z_]+", name)}
    assert top_level == DOCUMENTED == set(PUBLIC_TASKS), "update the documented list and the CHANGELOG"
    for name in DOCUMENTED:
        assert registry.route(name, (), {}, {}) == {"queue": ENGINE_QUEUE}


@pytest.fixture
def routed(worker: object) -> None:
    flows().add(FLAKY)
    flows().add(SLOW)
    add_route(Route(event_type="public.flaky", flow="public-flaky"))
    add_route(Route(event_type="public.slow", flow="public-slow"))


def outsider(tmp_path: Path, calls: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Run the calls from a fresh interpreter that imports only celery; returns their results."""
    script, calls_file = tmp_path / "outsider.py", tmp_path / f"calls-{time.monotonic_ns()}.json"
    script.write_text(OUTSIDER, encoding="utf-8")
    calls_file.write_text(json.dumps(calls), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGNFLOW_")}
    args = [
        os.environ["CAMPAIGNFLOW_BROKER_URL"],
        os.environ["CAMPAIGNFLOW_RESULT_BACKEND"],
        os.environ["CAMPAIGNFLOW_REDIS_KEY_PREFIX"],
        str(calls_file),
    ]
    done = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["project_modules"] == []
    return list(out["results"])


def test_send_task_from_a_process_that_imports_nothing_of_ours(routed: None, tmp_path: Path) -> None:
    flaky = {"id": "pub-flaky", "type": "public.flaky", "payload": {"fail_attempts": 99}}
    first, again, no_route, garbage, unknown = outsider(
        tmp_path,
        [
            ("campaignflow.ingest_event", {"event": flaky}),
            ("campaignflow.ingest_event", {"event": flaky}),
            ("campaignflow.ingest_event", {"event": {"id": "pub-x", "type": "public.nobody", "payload": {}}}),
            ("campaignflow.ingest_event", {"evnt": flaky}),
            ("campaignflow.cancel_run", {"run_id": "no-such-run"}),
        ],
    )
    assert first["duplicate"] is False
    assert first["status"] in ("queued", "running")
    assert again == {**first, "duplicate": True, "status": again["status"]}
    assert no_route["status"] == "rejected"
    assert no_route["reason"] == "no_route"
    assert no_route["rejected_id"]
    assert garbage["status"] == "rejected"
    assert "unexpected arguments ['evnt']" in garbage["error"]
    assert unknown == {"run_id": "no-such-run", "status": "not_found", "error": "run 'no-such-run' not found"}
    run_id = first["run_id"]
    assert wait_for_run(run_id).status == "failed"

    retried, refused = outsider(
        tmp_path,
        [
            ("campaignflow.retry_run", {"run_id": run_id, "payload_patch": {"fail_attempts": 0}}),
            ("campaignflow.retry_run", {"run_id": run_id}),
        ],
    )
    assert retried == {"run_id": run_id, "status": "running", "error": None}
    assert refused["error"]
    assert "only failed runs can be retried" in refused["error"]
    env = wait_for_run(run_id)
    assert env.status == "succeeded"
    assert record(env, "a").attempts == 1
    assert int(ledger().get(f"calls:{run_id}:a") or 0) == 1

    slow = outsider(
        tmp_path,
        [("campaignflow.ingest_event", {"event": {"id": "pub-slow", "type": "public.slow", "payload": {}}})],
    )
    slow_id = slow[0]["run_id"]
    eventually(lambda: envelope(slow_id).records, 30, f"run {slow_id} to start a step")
    (cancelled,) = outsider(tmp_path, [("campaignflow.cancel_run", {"run_id": slow_id})])
    assert cancelled == {"run_id": slow_id, "status": "cancelled", "error": None}
    assert wait_for_run(slow_id).status == "cancelled"


def test_client_wraps_the_public_tasks(routed: None) -> None:
    remote = CampaignflowClient(
        broker_url=os.environ["CAMPAIGNFLOW_BROKER_URL"],
        result_backend=os.environ["CAMPAIGNFLOW_RESULT_BACKEND"],
        key_prefix=os.environ["CAMPAIGNFLOW_REDIS_KEY_PREFIX"],
    )
    event = {"id": "client-1", "type": "public.flaky", "payload": {"fail_attempts": 0}}
    result = remote.ingest_event(event, wait=True)
    assert isinstance(result, dict)
    assert result["duplicate"] is False
    assert wait_for_run(result["run_id"]).status == "succeeded"

    local = CampaignflowClient()  # this project's app
    pending = local.ingest_event(event)
    assert isinstance(pending, AsyncResult)
    assert pending.get(timeout=30) == {**result, "duplicate": True, "status": "succeeded"}
    assert local.retry_run(result["run_id"], wait=True)["error"].endswith("only failed runs can be retried")
    assert local.cancel_run(result["run_id"], wait=True) == {
        "run_id": result["run_id"],
        "status": "succeeded",
        "error": None,
    }


def test_hundred_concurrent_public_ingests_of_one_event_give_one_run(routed: None) -> None:
    event = {"id": "pub-hundred", "type": "public.flaky", "payload": {"fail_attempts": 0}}
    pending = [app.send_task("campaignflow.ingest_event", kwargs={"event": event}) for _ in range(100)]
    results = [p.get(timeout=60) for p in pending]
    assert len({r["run_id"] for r in results}) == 1
    assert sum(not r["duplicate"] for r in results) == 1
    assert wait_for_run(results[0]["run_id"]).status == "succeeded"
    figure("public ingest: 100 send_task calls of one event id -> 1 run, 99 duplicates")
