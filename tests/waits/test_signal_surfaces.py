"""Signals through every door: the public task (``send_task`` by name, JSON in and out, expected
problems as ``error``), the Python client, and ``campaignflow runs signal`` / ``runs approve``."""

from __future__ import annotations

import json
import os

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from orchestration.cli.main import cli
from orchestration.client import CampaignflowClient
from tests.api.conftest import OPERATE, READ, assert_error, make_app
from tests.support.runs import record, wait_for_run
from tests.support.wiring import app
from tests.waits.helpers import start, wait_for_status

APPROVAL = {
    "name": "waits-approval",
    "steps": [
        {"kind": "wait", "id": "approve", "signal": "approval", "timeout": "1h"},
        {"kind": "wait", "id": "reply", "signal": "replied"},
        {"id": "send", "agent": "effect", "input": {"by": "$steps.approve.data.by"}},
    ],
}


def test_the_public_task_and_the_client_resume_a_wait(worker: object) -> None:
    run_id = start(APPROVAL)
    wait_for_status(run_id, "waiting")
    by_name = app.send_task(
        "campaignflow.signal_run",
        kwargs={"run_id": run_id, "signal": "approval", "data": {"by": "ana"}, "signal_id": "a-1"},
        queue="orchestration",
    ).get(timeout=30)
    assert by_name == {
        "run_id": run_id,
        "signal": "approval",
        "signal_id": "a-1",
        "status": "running",
        "duplicate": False,
        "resumed": True,
        "error": None,
    }
    wait_for_status(run_id, "waiting")  # now at reply
    client = CampaignflowClient(
        broker_url=os.environ["CAMPAIGNFLOW_BROKER_URL"],
        result_backend=os.environ["CAMPAIGNFLOW_RESULT_BACKEND"],
        key_prefix=os.environ["CAMPAIGNFLOW_REDIS_KEY_PREFIX"],
    )
    unknown = client.signal_run(run_id, "unsubscribed", wait=True)
    assert isinstance(unknown, dict)
    assert "waits for no signal 'unsubscribed'" in unknown["error"]
    assert unknown["status"] == "waiting"
    done = client.signal_run(run_id, "replied", {"text": "hi"}, signal_id="r-1", wait=True)
    assert isinstance(done, dict)
    assert done["resumed"] is True
    env = wait_for_run(run_id)
    assert env.status == "succeeded", env.metadata.error
    assert record(env, "send").input["by"] == "ana"
    late = client.signal_run(run_id, "replied", wait=True)
    assert isinstance(late, dict)
    assert "is succeeded" in late["error"]


def test_the_cli_signals_and_approves_with_json(worker: object) -> None:
    run_id = start(APPROVAL)
    wait_for_status(run_id, "waiting")
    runner = CliRunner()
    approved = runner.invoke(cli, ["runs", "approve", run_id, "--by", "ana", "--comment", "fine", "--json"])
    assert approved.exit_code == 0, approved.output
    assert json.loads(approved.output)["resumed"] is True
    wait_for_status(run_id, "waiting")
    bad = runner.invoke(cli, ["runs", "signal", run_id, "replied", "--data", "{not json"])
    assert bad.exit_code != 0
    assert "--data" in bad.output
    ok = runner.invoke(
        cli, ["runs", "signal", run_id, "replied", "--data", '{"text": "hi"}', "--signal-id", "x"]
    )
    assert ok.exit_code == 0, ok.output
    assert "resumed the run" in ok.output
    again = runner.invoke(cli, ["runs", "signal", run_id, "replied", "--signal-id", "x", "--json"])
    assert json.loads(again.output)["duplicate"] is True
    env = wait_for_run(run_id)
    assert record(env, "approve").output["data"] == {"by": "ana", "comment": "fine"}
    assert record(env, "reply").output["data"] == {"text": "hi"}
    wrong = runner.invoke(cli, ["runs", "approve", run_id, "--json"])
    assert wrong.exit_code != 0
    assert "is succeeded" in json.loads(wrong.output)["error"]["message"]


def test_the_http_api_takes_a_signal_from_an_operator(worker: object) -> None:
    run_id = start(APPROVAL)
    wait_for_status(run_id, "waiting")
    with TestClient(make_app(), raise_server_exceptions=False) as client:
        body = {"signal": "approval", "data": {"by": "ana"}, "signal_id": "h-1"}
        assert client.post(f"/v1/runs/{run_id}/signals", json=body, headers=READ).status_code == 403
        ok = client.post(f"/v1/runs/{run_id}/signals", json=body, headers=OPERATE)
        assert ok.status_code == 200, ok.text
        assert ok.json()["resumed"] is True
        again = client.post(f"/v1/runs/{run_id}/signals", json=body, headers=OPERATE)
        assert again.json()["duplicate"] is True
        waiting = wait_for_status(run_id, "waiting")
        shown = client.get(f"/v1/runs/{run_id}", headers=READ).json()
        assert shown["metadata"]["wait"]["signal"] == "replied"
        assert waiting.metadata.wait is not None
        unknown = client.post(f"/v1/runs/{run_id}/signals", json={"signal": "nope"}, headers=OPERATE)
        assert_error(unknown.json(), "invalid_input", "signal")
        assert unknown.status_code == 422
        missing = client.post("/v1/runs/no-such-run/signals", json={"signal": "replied"}, headers=OPERATE)
        assert missing.status_code == 404
        client.post(f"/v1/runs/{run_id}/signals", json={"signal": "replied"}, headers=OPERATE)
        wait_for_run(run_id)
        ended = client.post(f"/v1/runs/{run_id}/signals", json={"signal": "replied"}, headers=OPERATE)
        assert ended.status_code == 409
