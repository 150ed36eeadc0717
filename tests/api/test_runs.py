"""GET /v1/runs (filters, keyset pages, bad cursors, unknown filters), GET /v1/runs/{id}, one run's
cancel and retry (from the failed step with a patched payload), and bulk actions by filter."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import OPERATE, READ, SLOW_TYPE, assert_error, event
from tests.support.runs import wait_for_run


def ingest(client: TestClient, *events: dict[str, Any]) -> list[str]:
    resp = client.post("/v1/events", json=list(events), headers=OPERATE)
    assert resp.status_code == 202, resp.text
    return [r["run_id"] for r in resp.json()["results"]]


def failed_run(client: TestClient, event_id: str) -> str:
    [run_id] = ingest(client, event(event_id, fail_attempts=99, keep=1))
    assert wait_for_run(run_id).status == "failed"
    return run_id


def test_list_filters_and_pages(client: TestClient) -> None:
    ids = ingest(client, *(event(f"list-{i}", fail_attempts=0, tag=f"t{i % 2}") for i in range(7)))
    for run_id in ids:
        wait_for_run(run_id)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, "flow": "api-flaky"}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/runs", params=params, headers=READ).json()
        seen += [r["run_id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids)
    assert len(seen) == len(set(seen)) == 7  # every run once, across three pages
    text = client.get("/v1/runs", params={"q": '"tag": "t1"'}, headers=READ).json()["items"]
    assert {r["event_id"] for r in text} == {"list-1", "list-3", "list-5"}
    one = client.get("/v1/runs", params={"event_id": "list-4", "status": "succeeded"}, headers=READ)
    assert [r["run_id"] for r in one.json()["items"]] == [ids[4]]
    later = client.get("/v1/runs", params={"created_after": "2999-01-01T00:00:00Z"}, headers=READ)
    assert later.json() == {"items": [], "next_cursor": None}


def test_bad_cursor_and_unknown_filters_are_400(client: TestClient) -> None:
    bad = client.get("/v1/runs", params={"cursor": "not-a-cursor"}, headers=READ)
    assert bad.status_code == 400
    assert_error(bad.json(), "invalid_cursor", "cursor")
    unknown = client.get("/v1/runs", params={"stauts": "failed"}, headers=READ)
    assert unknown.status_code == 400
    assert "status" in assert_error(unknown.json(), "unknown_parameter", "stauts")["message"]
    wrong = client.get("/v1/runs", params={"status": "finished", "limit": "x"}, headers=READ)
    assert wrong.status_code == 422
    assert_error(wrong.json(), "invalid_request", "status[0]")


def test_envelope_and_404(client: TestClient) -> None:
    [run_id] = ingest(client, event("env-1"))
    wait_for_run(run_id)
    env = client.get(f"/v1/runs/{run_id}", headers=READ).json()
    assert env["run_id"] == run_id
    assert [r["step_id"] for r in env["records"]] == ["a", "b"]
    assert env["metadata"]["event_id"] == "env-1"
    missing = client.get("/v1/runs/no-such-run", headers=READ)
    assert missing.status_code == 404
    assert_error(missing.json(), "not_found")


def test_retry_from_the_failed_step_with_a_patch(client: TestClient) -> None:
    run_id = failed_run(client, "retry-1")
    live = client.post(f"/v1/runs/{run_id}/retry", json={"payload_patch": {"fail_attempts": 0}}, headers=READ)
    assert live.status_code == 403
    resp = client.post(
        f"/v1/runs/{run_id}/retry", json={"payload_patch": {"fail_attempts": 0}}, headers=OPERATE
    )
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"run_id": run_id, "status": "running", "error": None}
    env = wait_for_run(run_id)
    assert env.status == "succeeded"
    assert env.metadata.payload == {"fail_attempts": 0, "keep": 1}
    assert [r.attempts for r in env.records] == [1, 2]  # a did not run again
    again = client.post(f"/v1/runs/{run_id}/retry", headers=OPERATE)
    assert again.status_code == 409
    assert_error(again.json(), "conflict")


def test_cancel(client: TestClient) -> None:
    [run_id] = ingest(client, event("cancel-1", SLOW_TYPE, x=1))
    resp = client.post(f"/v1/runs/{run_id}/cancel", headers=OPERATE)
    assert resp.json() == {"run_id": run_id, "status": "cancelled", "error": None}
    assert wait_for_run(run_id).status == "cancelled"
    assert client.post("/v1/runs/nope/cancel", headers=OPERATE).status_code == 404


def test_bulk_retry_counts_first(client: TestClient) -> None:
    failed = [failed_run(client, f"bulk-{i}") for i in range(3)]
    dry = client.post("/v1/runs/bulk/retry", json={"filter": {"flow": "api-flaky"}}, headers=OPERATE)
    assert dry.json() == {"matched": 3, "dry_run": True, "results": []}
    need = client.post("/v1/runs/bulk/retry", json={"dry_run": False}, headers=OPERATE)
    assert need.status_code == 422
    assert_error(need.json(), "count_required", "expected_count")
    stale = client.post("/v1/runs/bulk/retry", json={"dry_run": False, "expected_count": 2}, headers=OPERATE)
    assert stale.status_code == 409
    assert_error(stale.json(), "count_changed", "expected_count")
    done = client.post("/v1/runs/bulk/retry", json={"dry_run": False, "expected_count": 3}, headers=OPERATE)
    assert done.status_code == 200
    assert sorted(r["run_id"] for r in done.json()["results"]) == sorted(failed)
    for run_id in failed:  # retried as they were: step b fails again
        env = wait_for_run(run_id)
        assert env.metadata.redrives == 1
        assert env.status == "failed"


def test_bulk_cancel_takes_live_runs_only(client: TestClient) -> None:
    ids = ingest(client, event("bc-1", SLOW_TYPE, x=1), event("bc-2", SLOW_TYPE, x=2))
    body = {"filter": {"flow": "api-slow"}}
    assert client.post("/v1/runs/bulk/cancel", json=body, headers=OPERATE).json()["matched"] == 2
    done = client.post(
        "/v1/runs/bulk/cancel", json={**body, "dry_run": False, "expected_count": 2}, headers=OPERATE
    )
    assert {r["status"] for r in done.json()["results"]} == {"cancelled"}
    assert {wait_for_run(r).status for r in ids} == {"cancelled"}
    terminal = client.post(
        "/v1/runs/bulk/cancel", json={"filter": {"status": ["succeeded"]}}, headers=OPERATE
    )
    assert terminal.status_code == 422
    assert_error(terminal.json(), "invalid_filter", "filter.status")
