"""The console's run page for a waiting run: what it waits for and until when, and the action that
sends its signal (an approval carries who approved and the comment), confirmed first."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.console.conftest import OPERATE_TOKEN, READ_TOKEN, login
from tests.support.runs import record, wait_for_run
from tests.waits.helpers import start, wait_for_status

APPROVE_THEN_REPLY = {
    "name": "console-waits",
    "steps": [
        {"kind": "wait", "id": "approve", "signal": "approval", "timeout": "1h"},
        {"kind": "wait", "id": "reply", "signal": "replied"},
        {"id": "send", "agent": "effect"},
    ],
}


def test_a_waiting_run_shows_its_wait_and_takes_its_signal(client: TestClient) -> None:
    run_id = start(APPROVE_THEN_REPLY)
    wait_for_status(run_id, "waiting")
    login(client, READ_TOKEN)
    seen = client.get(f"/runs/{run_id}").text
    assert "for signal <code>approval</code>" in seen
    assert 'id="signal-form"' not in seen  # the read role sees, it does not act
    client.cookies.clear()

    csrf = login(client, OPERATE_TOKEN)
    page = client.get(f"/runs/{run_id}").text
    assert 'id="signal-form"' in page
    assert 'id="cancel-form"' in page  # a waiting run can be cancelled
    form = {"csrf": csrf, "signal": "approval", "comment": "looks right"}
    asked = client.post(f"/runs/{run_id}/signal", data=form)
    assert asked.status_code == 200
    assert "Approve" in asked.text
    assert envelope_status(run_id) == "waiting"  # nothing sent before the confirmation
    done = client.post(f"/runs/{run_id}/signal", data={**form, "confirm": "yes"})
    assert done.status_code == 303
    assert done.headers["location"] == f"/runs/{run_id}?notice=signalled"

    wait_for_status(run_id, "waiting")  # now at reply
    bad = client.post(f"/runs/{run_id}/signal", data={"csrf": csrf, "signal": "replied", "data": "{oops"})
    assert bad.status_code == 422
    sent = client.post(
        f"/runs/{run_id}/signal",
        data={"csrf": csrf, "signal": "replied", "data": '{"ok": 1}', "confirm": "yes"},
    )
    assert sent.status_code == 303
    env = wait_for_run(run_id)
    assert env.status == "succeeded", env.metadata.error
    assert record(env, "approve").output["data"] == {"by": "ops", "comment": "looks right"}
    assert record(env, "reply").output["data"] == {"ok": 1}


def envelope_status(run_id: str) -> str:
    return str(wait_for_status(run_id, "waiting").status)
