"""The console over plain HTTP: login and its refusals, CSRF on every action, the read role, and
every page rendered from real runs, rejected events, dead letters, campaigns and flows."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from orchestration.api.console.pages.campaigns import next_slots
from orchestration.api.console.pages.run import merge_patch_between
from orchestration.control import campaigns
from orchestration.control.campaigns import CampaignSpec
from orchestration.control.deadletters import list_dead_letters
from orchestration.control.run_control import merge_patch
from tests.console.conftest import (
    FLOWER_URL,
    OPERATE_TOKEN,
    READ_TOKEN,
    SHAPES_TYPE,
    SLOW_TYPE,
    csrf_of,
    event,
    failed_run,
    ingest,
    login,
)
from tests.faults.test_dead_letters import publish_raw, task_headers
from tests.support.runs import envelope, wait_for_run
from tests.support.wait import eventually


def test_pages_need_a_login_and_a_known_token(client: TestClient) -> None:
    first = client.get("/runs?status=failed")
    assert first.status_code == 303
    assert first.headers["location"] == "/login?next=%2Fruns%3Fstatus%3Dfailed"
    form = client.get("/login")
    wrong = client.post("/login", data={"csrf": csrf_of(form.text), "token": "not-a-token-at-all-0000"})
    assert wrong.status_code == 401
    assert "unknown token" in wrong.text
    assert client.get("/runs").status_code == 303  # still not logged in
    no_csrf = client.post("/login", data={"token": OPERATE_TOKEN})
    assert no_csrf.status_code == 403
    assert client.get("/runs").status_code == 303
    # the session cookie is signed and HttpOnly, and says no token
    csrf = login(client, READ_TOKEN)
    cookie = client.cookies.get("campaignflow_console") or ""
    assert READ_TOKEN not in cookie
    assert OPERATE_TOKEN not in cookie
    resp = client.post("/logout", data={"csrf": csrf})
    assert resp.status_code == 303
    assert "httponly" in resp.headers["set-cookie"].lower()
    assert client.get("/runs").status_code == 303
    # a tampered cookie is no session
    client.cookies.set("campaignflow_console", cookie[:-2] + "xx")
    assert client.get("/runs").status_code == 303


def test_an_open_redirect_is_refused(client: TestClient) -> None:
    for target in ("//elsewhere.example/x", "/\t/elsewhere.example", "https://elsewhere.example", "/\\x"):
        form = client.get("/login")
        resp = client.post("/login", data={"csrf": csrf_of(form.text), "token": READ_TOKEN, "next": target})
        assert resp.headers["location"] == "/runs", target
    form = client.get("/login")
    kept = client.post("/login", data={"csrf": csrf_of(form.text), "token": READ_TOKEN, "next": "/flows"})
    assert kept.headers["location"] == "/flows"


def test_every_action_needs_its_csrf_token(client: TestClient) -> None:
    run_id = failed_run(client, "csrf-1")
    csrf = login(client, OPERATE_TOKEN)
    actions = [
        f"/runs/{run_id}/retry",
        f"/runs/{run_id}/cancel",
        "/rejected/1/replay",
        "/dead-letters/1/replay",
        "/campaigns/none/pause",
        "/logout",
    ]
    for action in actions:
        missing = client.post(action, data={"confirm": "yes"})
        assert missing.status_code == 403, (action, missing.text)
        assert "CSRF" in missing.text
        bad = client.post(action, data={"confirm": "yes", "csrf": csrf[:-3] + "abc"})
        assert bad.status_code == 403, action
    assert envelope(run_id).status == "failed"  # nothing was done
    # another browser's token is no good either
    other = TestClient(client.app, follow_redirects=False)
    other_csrf = login(other, OPERATE_TOKEN)
    assert other_csrf != csrf
    crossed = client.post(f"/runs/{run_id}/retry", data={"confirm": "yes", "csrf": other_csrf})
    assert crossed.status_code == 403
    assert envelope(run_id).status == "failed"
    done = client.post(f"/runs/{run_id}/retry", data={"confirm": "yes", "csrf": csrf, "payload": ""})
    assert done.status_code == 303


def test_a_read_token_sees_but_cannot_act(client: TestClient) -> None:
    [slow] = ingest(client, event("read-slow", SLOW_TYPE, x=1))
    failed = failed_run(client, "read-1")
    csrf = login(client, READ_TOKEN)
    page = client.get(f"/runs/{failed}")
    assert page.status_code == 200
    assert 'id="retry-form"' not in page.text
    assert "actions need an operate token" in page.text
    for url in (f"/runs/{failed}/retry", f"/runs/{slow}/cancel"):
        refused = client.post(url, data={"csrf": csrf, "confirm": "yes"})
        assert refused.status_code == 403
        assert "role read" in refused.text
    assert envelope(failed).status == "failed"
    assert wait_for_run(slow).status == "succeeded"  # never cancelled


def test_retry_asks_first_then_runs_from_the_failed_step_with_the_edited_payload(client: TestClient) -> None:
    run_id = failed_run(client, "retry-1")
    csrf = login(client, OPERATE_TOKEN)
    before = envelope(run_id)
    edited = '{"fail_attempts": 0, "added": {"n": 1}}'  # "keep" removed, fail_attempts changed
    ask = client.post(f"/runs/{run_id}/retry", data={"csrf": csrf, "payload": edited})
    assert ask.status_code == 200
    assert 'id="confirm"' in ask.text
    assert "&#34;keep&#34;: null" in ask.text  # the merge patch is shown
    assert envelope(run_id).status == "failed"  # asking did nothing
    done = client.post(f"/runs/{run_id}/retry", data={"csrf": csrf, "payload": edited, "confirm": "yes"})
    assert done.status_code == 303
    assert done.headers["location"] == f"/runs/{run_id}?notice=retried"
    after = wait_for_run(run_id)
    assert after.status == "succeeded"
    assert after.metadata.payload == {"fail_attempts": 0, "added": {"n": 1}}
    a_before, a_after = before.record("a"), after.record("a")
    assert a_before is not None
    assert a_after is not None
    assert a_after.attempts == a_before.attempts == 1  # the succeeded step did not run again
    bad = client.post(f"/runs/{run_id}/retry", data={"csrf": csrf, "payload": "{nope", "confirm": "yes"})
    assert bad.status_code == 422
    assert "not valid JSON" in bad.text
    again = client.post(f"/runs/{run_id}/retry", data={"csrf": csrf, "payload": "", "confirm": "yes"})
    assert again.status_code == 409  # it did not fail this time: a page says so
    assert "only failed runs can be retried" in again.text


def test_the_run_page_shows_tries_waits_graph_and_flower_links(client: TestClient) -> None:
    run_id = failed_run(client, "page-1")
    login(client, READ_TOKEN)
    html = client.get(f"/runs/{run_id}").text
    env = envelope(run_id)
    # the graph: a node per step, coloured by its status
    assert re.search(r'class="node step status-succeeded" data-step="a"', html)
    assert re.search(r'class="node step status-failed" data-step="b"', html)
    assert 'class="node terminal status-failed"' in html
    # the timeline: two tries of b with the backoff between them as a wait, one try of a
    b_tries = re.findall(r'<g class="row" data-step="b">(.*?)</g>', html)[0]
    assert b_tries.count('data-kind="try"') == 2
    assert b_tries.count('data-kind="wait"') == 1
    assert "outcome-failed" in b_tries
    # each agent step links to its Celery task's page in Flower
    task_ids = re.findall(rf'href="{re.escape(FLOWER_URL)}/task/([0-9a-f-]+)"', html)
    assert len(task_ids) == 2
    assert all(len(t) == 36 for t in task_ids)
    record_b = env.record("b")
    assert record_b is not None
    assert record_b.error is not None
    assert record_b.error.message in html
    assert "fail_attempts" in html  # its input


def test_every_page_renders_with_real_data(client: TestClient) -> None:
    failed = failed_run(client, "all-1")
    [shapes] = ingest(client, event("all-2", SHAPES_TYPE, hot=False, items=[1, 2, 3]))
    assert wait_for_run(shapes).status == "succeeded"
    bad = client.post(
        "/v1/events",
        json={"id": "bad-1", "type": "console.flaky", "payload": {}},
        headers={"Authorization": f"Bearer {OPERATE_TOKEN}"},
    )
    rejected_id = bad.json()["error"]["rejected_id"]
    publish_raw(b"{not json", task_headers())
    letter = eventually(lambda: list_dead_letters(status=None), 20, "a dead letter")[0]
    campaigns.add_campaign(CampaignSpec(name="weekly", event_type="console.flaky", every_seconds=3600))
    csrf = login(client, OPERATE_TOKEN)
    pages = {
        "/runs": [failed[:8], shapes[:8], 'data-status="failed"'],
        "/runs?status=failed&flow=console-flaky": [failed[:8]],
        f"/runs/{shapes}": ['data-step="each"', 'class="node map', 'class="node decision', "fails"],
        f"/runs/{failed}": ["Retry from the failed step (b)", "Timeline"],
        "/overview": ['data-agent="fail"', 'data-queue="orchestration"', 'id="total">2<'],
        "/flows": ['data-flow="console-shapes"', "v1</a> (1 run)"],
        "/flows/console-shapes": ['class="flow-graph"', "flowchart TD", "join both"],
        "/campaigns": ['data-campaign="weekly"', 'data-enabled="yes"', "Pause…"],
        "/rejected": [f'data-rejected="{rejected_id}"'],
        f"/rejected/{rejected_id}": ["payload.fail_attempts", 'id="replay-form"'],
        "/dead-letters": [f'data-letter="{letter.id}"'],
        f"/dead-letters/{letter.id}": ["{not json", letter.queue, "Replay…"],
    }
    for url, expected in pages.items():
        resp = client.get(url)
        assert resp.status_code == 200, (url, resp.text[:500])
        assert resp.headers["content-security-policy"].startswith("default-src 'self'")
        for text in expected:
            assert text in resp.text, (url, text)
    assert failed[:8] not in client.get("/runs?status=succeeded").text
    assert client.get("/runs?status=finished").status_code == 400
    assert client.get("/static/console.css").status_code == 200
    assert client.get("/static/../../settings.py").status_code == 404
    assert client.get("/runs/no-such-run").status_code == 404
    # pause asks first, then pauses; the page says so and the next slots are gone
    ask = client.post("/campaigns/weekly/pause", data={"csrf": csrf})
    assert "Pause it" in ask.text
    assert campaigns.get_campaign("weekly")["enabled"] is True
    client.post("/campaigns/weekly/pause", data={"csrf": csrf, "confirm": "yes"})
    assert campaigns.get_campaign("weekly")["enabled"] is False
    assert 'data-enabled="no"' in client.get("/campaigns").text


def test_runs_list_pages_with_a_cursor(client: TestClient) -> None:
    ids = ingest(client, *(event(f"page-{i}", fail_attempts=0) for i in range(53)))
    login(client, READ_TOKEN)
    first = client.get("/runs?flow=console-flaky").text
    older = re.search(r'id="older" href="([^"]+)"', first)
    assert older
    second = client.get(older.group(1).replace("&amp;", "&")).text
    seen = set(re.findall(r'data-run="([^"]+)"', first)) | set(re.findall(r'data-run="([^"]+)"', second))
    assert seen == set(ids)
    assert 'id="older"' not in second


def test_merge_patch_between_gives_back_the_edit() -> None:
    old = {"a": 1, "b": {"c": 2, "d": 3}, "gone": True}
    new = {"a": 1, "b": {"c": 5, "d": 3}, "added": [1]}
    patch = merge_patch_between(old, new)
    assert patch == {"gone": None, "b": {"c": 5}, "added": [1]}
    assert merge_patch(old, patch) == new
    assert merge_patch_between(old, old) == {}


def test_next_slots_of_interval_cron_and_paused_campaigns() -> None:
    now = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
    row = {
        "enabled": True,
        "schedule_kind": "interval",
        "every_seconds": 600.0,
        "starts_at": datetime(2026, 12, 4, 9, 0, tzinfo=UTC),
        "created_at": now,
    }
    assert next_slots(row, now) == [now + timedelta(minutes=10 * i) for i in (1, 2, 3)]
    cron = {**row, "schedule_kind": "cron", "cron": "0 8 * * 1", "timezone": "Europe/Berlin"}
    slots = next_slots(cron, now)
    assert [s.isoformat() for s in slots] == [
        "2026-12-07T07:00:00+00:00",
        "2026-12-14T07:00:00+00:00",
        "2026-12-21T07:00:00+00:00",
    ]
    assert next_slots({**row, "enabled": False}, now) == []
