"""POST /v1/events: accepted events open runs (idempotently), rejected ones are stored and answered
422 with their id, malformed JSON and over-large bodies are stored too, tokens are checked."""

from __future__ import annotations

import json

import sqlalchemy as sa
from fastapi.testclient import TestClient

from orchestration.control.rejected import get_rejected, list_rejected
from orchestration.store import sql_engine
from tests.api.conftest import OPERATE, READ, assert_error, event
from tests.support.runs import wait_for_run


def run_count() -> int:
    with sql_engine().connect() as conn:
        return int(conn.execute(sa.text("select count(*) from run")).scalar_one())


def test_an_event_opens_a_run_once(client: TestClient) -> None:
    first = client.post("/v1/events", json=event("api-1"), headers=OPERATE)
    assert first.status_code == 202, first.text
    body = first.json()
    assert body["status"] == "queued"
    assert body["duplicate"] is False
    assert wait_for_run(body["run_id"]).status == "succeeded"

    again = client.post("/v1/events", json=event("api-1"), headers=OPERATE)
    assert again.status_code == 202
    assert again.json() == {"run_id": body["run_id"], "status": "succeeded", "duplicate": True}
    assert run_count() == 1


def test_a_rejected_event_is_stored_and_named(client: TestClient) -> None:
    resp = client.post("/v1/events", json=event("api-2", "no.such.type"), headers=OPERATE)
    assert resp.status_code == 422
    error = assert_error(resp.json(), "rejected", "type")
    stored = get_rejected(error["rejected_id"])
    assert stored.event_id == "api-2"
    assert stored.raw == event("api-2", "no.such.type")
    assert "no route" in error["message"]


def test_wrong_types_name_the_field(client: TestClient) -> None:
    resp = client.post(
        "/v1/events", json={"id": "api-3", "type": "test.flaky", "payload": "x"}, headers=OPERATE
    )
    assert resp.status_code == 422
    error = assert_error(resp.json(), "rejected", "payload")
    assert get_rejected(error["rejected_id"]).raw["payload"] == "x"
    assert run_count() == 0


def test_malformed_json_is_stored_as_received(client: TestClient) -> None:
    body = b'{"id": "api-4", "type": "test.flaky", "payload": {'
    resp = client.post("/v1/events", content=body, headers={**OPERATE, "Content-Type": "application/json"})
    assert resp.status_code == 400
    error = assert_error(resp.json(), "invalid_json")
    assert get_rejected(error["rejected_id"]).raw == body.decode()


def test_a_10_mb_body_is_413_and_its_start_is_kept(client: TestClient) -> None:
    payload = {"blob": "x" * (10 * 1024 * 1024)}
    body = json.dumps({"id": "api-big", "type": "test.flaky", "payload": payload}).encode()
    resp = client.post("/v1/events", content=body, headers={**OPERATE, "Content-Type": "application/json"})
    assert resp.status_code == 413
    error = assert_error(resp.json(), "body_too_large", "body")
    stored = get_rejected(error["rejected_id"])
    assert stored.raw_complete is False
    assert str(stored.raw).startswith('"{\\"id\\": \\"api-big\\"')
    assert "CAMPAIGNFLOW_API_MAX_BODY_BYTES" in stored.problems[0]
    assert run_count() == 0


def test_a_batch_answers_per_event(client: TestClient) -> None:
    ok = client.post("/v1/events", json=[event("api-b1"), event("api-b2")], headers=OPERATE)
    assert ok.status_code == 202
    results = ok.json()["results"]
    assert [r["index"] for r in results] == [0, 1]
    assert all(r["status"] == "queued" and r["error"] is None for r in results)

    mixed = client.post("/v1/events", json=[event("api-b3"), event("api-b4", "nope")], headers=OPERATE)
    assert mixed.status_code == 422
    body = mixed.json()
    error = assert_error(body, "rejected", "[1].type")
    assert body["results"][0]["status"] == "queued"
    assert body["results"][1]["rejected_id"] == error["rejected_id"]
    assert run_count() == 3

    empty = client.post("/v1/events", json=[], headers=OPERATE)
    assert empty.status_code == 400
    assert_error(empty.json(), "empty_batch")


def test_tokens_are_checked(client: TestClient) -> None:
    none = client.post("/v1/events", json=event("api-t1"))
    assert none.status_code == 401
    assert none.headers["WWW-Authenticate"] == "Bearer"
    assert_error(none.json(), "unauthorized", "Authorization")
    wrong = client.post("/v1/events", json=event("api-t1"), headers={"Authorization": "Bearer not-a-token"})
    assert wrong.status_code == 401
    read = client.post("/v1/events", json=event("api-t1"), headers=READ)
    assert read.status_code == 403
    assert_error(read.json(), "forbidden")
    assert client.get("/v1/runs", headers=READ).status_code == 200
    assert run_count() == 0
    assert list_rejected() == []  # refused callers leave nothing behind
