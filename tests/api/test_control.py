"""Rejected events (list, show, replay after a fix), dead letters (list, show, replay), campaigns
(add, list, show, change, pause, delete) and flows (list, graph), through the API."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from orchestration.control.manager import Route, add_route
from tests.api.conftest import FLAKY, OPERATE, READ, assert_error, event
from tests.faults.test_dead_letters import one_dead_letter, publish_raw, task_headers
from tests.support.runs import wait_for_run
from tests.support.wiring import app


def test_a_rejected_event_is_replayed_after_a_fix(client: TestClient) -> None:
    resp = client.post("/v1/events", json=event("late-route", "test.later"), headers=OPERATE)
    rejected_id = resp.json()["error"]["rejected_id"]
    listed = client.get("/v1/rejected", headers=READ).json()
    assert [r["id"] for r in listed] == [rejected_id]
    assert listed[0]["raw"] is None  # bodies only when one is shown
    shown = client.get(f"/v1/rejected/{rejected_id}", headers=READ).json()
    assert shown["raw"] == event("late-route", "test.later")

    again = client.post(f"/v1/rejected/{rejected_id}/replay", headers=OPERATE)
    assert again.status_code == 422  # still no route: rejected again, the same row
    assert assert_error(again.json(), "rejected", "type")["rejected_id"] == rejected_id

    add_route(Route(event_type="test.later", flow=str(FLAKY["name"])))
    done = client.post(f"/v1/rejected/{rejected_id}/replay", headers=OPERATE)
    assert done.status_code == 202, done.text
    assert wait_for_run(done.json()["run_id"]).status == "succeeded"
    twice = client.post(f"/v1/rejected/{rejected_id}/replay", headers=OPERATE)
    assert twice.status_code == 409
    assert (
        client.get("/v1/rejected", params={"status": "replayed"}, headers=READ).json()[0]["status"]
        == "replayed"
    )
    assert client.get("/v1/rejected/999999", headers=READ).status_code == 404


def test_a_corrected_body_is_replayed(client: TestClient) -> None:
    resp = client.post(
        "/v1/events", json={"id": "fix-me", "type": "test.flaky", "payload": 1}, headers=OPERATE
    )
    rejected_id = resp.json()["error"]["rejected_id"]
    body = {"event": event("fix-me")}
    done = client.post(f"/v1/rejected/{rejected_id}/replay", json=body, headers=OPERATE)
    assert done.status_code == 202, done.text
    assert wait_for_run(done.json()["run_id"]).metadata.event_id == "fix-me"


@pytest.fixture
def late_task(client: TestClient, worker: Any) -> Iterator[tuple[str, threading.Event]]:
    name, ran = "tests.api_late_task", threading.Event()
    yield name, ran
    app.tasks.pop(name, None)
    worker.consumer.strategies.pop(name, None)


def test_dead_letters_list_show_and_replay(
    client: TestClient, worker: Any, late_task: tuple[str, threading.Event]
) -> None:
    name, ran = late_task
    publish_raw(json.dumps([["hello"], {}, {}]).encode(), task_headers(name))
    letter_id = one_dead_letter().id
    listed = client.get("/v1/dead-letters", headers=READ).json()
    assert [(d["id"], d["reason"], d["body_text"]) for d in listed] == [(letter_id, "unknown_task", None)]
    shown = client.get(f"/v1/dead-letters/{letter_id}", headers=READ).json()
    assert shown["body_text"] == '[["hello"], {}, {}]'
    assert shown["headers"]["task"] == name
    early = client.post(f"/v1/dead-letters/{letter_id}/replay", headers=OPERATE)
    assert early.status_code == 409
    assert "still unknown" in assert_error(early.json(), "conflict")["message"]

    def late(word: str) -> str:
        ran.set()
        return word

    app.task(name=name, shared=False)(late)
    worker.consumer.update_strategies()
    done = client.post(f"/v1/dead-letters/{letter_id}/replay", headers=OPERATE)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "replayed"
    assert ran.wait(20), "the replayed message did not run"
    assert client.get("/v1/dead-letters/424242", headers=READ).status_code == 404


CAMPAIGN: dict[str, Any] = {
    "name": "spring",
    "event_type": "test.flaky",
    "every_seconds": 3600,
    "payload": {"fail_attempts": 0},
}


def test_campaigns_crud(client: TestClient) -> None:
    made = client.post("/v1/campaigns", json=CAMPAIGN, headers=OPERATE)
    assert made.status_code == 201, made.text
    assert made.json()["schedule_kind"] == "interval"
    assert client.post("/v1/campaigns", json=CAMPAIGN, headers=OPERATE).status_code == 409
    bad = client.post("/v1/campaigns", json={**CAMPAIGN, "name": "x", "cron": "* *"}, headers=OPERATE)
    assert bad.status_code == 422
    assert_error(bad.json(), "invalid_request")
    assert [c["name"] for c in client.get("/v1/campaigns", headers=READ).json()] == ["spring"]

    paused = client.patch("/v1/campaigns/spring", json={"enabled": False}, headers=OPERATE)
    assert paused.json()["enabled"] is False
    cron = client.patch(
        "/v1/campaigns/spring", json={"every_seconds": None, "cron": "0 9 * * 1"}, headers=OPERATE
    ).json()
    assert (cron["schedule_kind"], cron["cron"], cron["enabled"]) == ("cron", "0 9 * * 1", False)
    wrong = client.patch("/v1/campaigns/spring", json={"cron": None}, headers=OPERATE)
    assert wrong.status_code == 422
    assert_error(wrong.json(), "invalid_input")
    assert client.patch("/v1/campaigns/spring", json={"name": "x"}, headers=OPERATE).status_code == 422

    assert client.delete("/v1/campaigns/spring", headers=READ).status_code == 403
    assert client.delete("/v1/campaigns/spring", headers=OPERATE).status_code == 204
    gone = client.get("/v1/campaigns/spring", headers=READ)
    assert gone.status_code == 404
    assert_error(gone.json(), "not_found")


def test_flows_and_their_graph(client: TestClient) -> None:
    flows = {f["name"]: f for f in client.get("/v1/flows", headers=READ).json()}
    assert flows["lead_handling"]["steps"] > 1
    graph = client.get("/v1/flows/api-flaky/graph", headers=READ)
    assert graph.headers["content-type"].startswith("text/plain")
    assert graph.text.startswith("flowchart TD\n")
    assert 'n_b["b<br/><i>fail</i>"]' in graph.text
    missing = client.get("/v1/flows/nope/graph", headers=READ)
    assert missing.status_code == 404
    assert "api-flaky" in assert_error(missing.json(), "not_found")["message"]
