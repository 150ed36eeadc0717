"""POST /v1/webhooks/{source}: a call signed with the source's secret within the window is
ingested; a bad or stale signature is 401 and stored nowhere."""

from __future__ import annotations

import json
import time

from fastapi.testclient import TestClient

from orchestration.api.signatures import sign
from orchestration.control.rejected import list_rejected
from orchestration.store import repository as repo
from orchestration.store import sql_engine
from tests.api.conftest import WEBHOOK_SECRET, assert_error, event


def signed(body: bytes, secret: str = WEBHOOK_SECRET, at: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if at is None else at))
    return {
        "Content-Type": "application/json",
        "X-Campaignflow-Timestamp": timestamp,
        "X-Campaignflow-Signature": sign(secret.encode(), timestamp, body),
    }


def runs() -> int:
    with sql_engine().connect() as conn:
        return len(repo.list_runs(conn, limit=100))


def test_a_signed_call_is_ingested(client: TestClient) -> None:
    body = json.dumps(event("hook-1")).encode()
    resp = client.post("/v1/webhooks/crm", content=body, headers=signed(body))
    assert resp.status_code == 202, resp.text
    assert resp.json()["duplicate"] is False
    rejected = client.post("/v1/webhooks/crm", content=b"[", headers=signed(b"["))
    assert rejected.status_code == 400  # signed but malformed: stored like any event body
    assert_error(rejected.json(), "invalid_json")


def test_bad_signatures_are_401_and_stored_nowhere(client: TestClient) -> None:
    body = json.dumps(event("hook-2")).encode()
    cases = {
        "wrong secret": signed(body, secret="another-secret-0123456789"),
        "stale": signed(body, at=time.time() - 3600),
        "tampered": signed(body.replace(b"hook-2", b"hook-3")),
        "unsigned": {"Content-Type": "application/json"},
    }
    for name, headers in cases.items():
        resp = client.post("/v1/webhooks/crm", content=body, headers=headers)
        assert resp.status_code == 401, name
        assert_error(resp.json(), "bad_signature")
    unknown = client.post("/v1/webhooks/nobody", content=body, headers=signed(body))
    assert unknown.status_code == 404
    assert_error(unknown.json(), "unknown_source", "source")
    assert runs() == 0
    assert list_rejected(None) == []
