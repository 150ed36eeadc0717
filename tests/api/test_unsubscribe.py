"""``POST /v1/unsubscribe``: the one-click unsubscribe of RFC 8058, with the token of a real
message's List-Unsubscribe header; no bearer token, the signed token is the credential."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from orchestration.control import suppression
from orchestration.control.manager import manager
from orchestration.settings import get_settings
from orchestration.unsubscribe import sign
from tests.api.conftest import assert_error
from tests.support.config import settings_env
from tests.support.runs import record, wait_for_run
from tests.support.smtp import SmtpSink

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:aiosmtpd.*")
ONE_CLICK = {
    "content": b"List-Unsubscribe=One-Click",
    "headers": {"Content-Type": "application/x-www-form-urlencoded"},
}


@pytest.fixture
def smtp(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpSink]:
    with SmtpSink() as sink, settings_env(monkeypatch, smtp_url=sink.url()):
        yield sink


def send(event_id: str, to: str) -> str:
    event = {
        "id": event_id,
        "type": "message.requested",
        "payload": {"to": to, "subject": "News", "body": "Hi"},
    }
    return wait_for_run(manager().ingest_event(event).run_id).run_id


def test_the_header_url_unsubscribes_in_one_click(client: TestClient, smtp: SmtpSink) -> None:
    send("news-1", "Ada@Example.org")
    [msg] = smtp.messages
    url = str(msg["List-Unsubscribe"]).strip("<>")
    path = url.removeprefix("https://mail.example.test")

    answer = client.post(path, **ONE_CLICK)  # type: ignore[arg-type]
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"address": "ada@example.org", "unsubscribed": True, "already": False}
    assert client.post(path, **ONE_CLICK).json()["already"] is True  # type: ignore[arg-type]
    [entry] = suppression.list_entries()
    assert (entry["reason"], entry["source"]) == ("unsubscribed", "one-click")

    later = wait_for_run(send("news-2", "ada@example.org"))
    assert record(later, "send").status == "skipped"
    assert len(smtp.messages) == 1


def test_a_multipart_body_is_one_click_too(client: TestClient) -> None:
    secret = get_settings().unsubscribe_secret
    assert secret is not None
    token = sign(secret, "bo@example.org")
    answer = client.post(f"/v1/unsubscribe?token={token}", files={"List-Unsubscribe": (None, "One-Click")})
    assert answer.status_code == 200, answer.text
    assert answer.json()["address"] == "bo@example.org"


def test_a_bad_token_or_body_is_refused_and_nothing_is_suppressed(client: TestClient) -> None:
    secret = get_settings().unsubscribe_secret
    assert secret is not None
    forged = sign("another secret", "cy@example.org")
    answer = client.post(f"/v1/unsubscribe?token={forged}", **ONE_CLICK)  # type: ignore[arg-type]
    assert answer.status_code == 422
    assert_error(answer.json(), "invalid_input", "token")
    assert "signature does not match" in answer.json()["error"]["message"]

    garbled = client.post("/v1/unsubscribe?token=%%%.abc", **ONE_CLICK)  # type: ignore[arg-type]
    assert garbled.status_code == 422

    token = sign(secret, "cy@example.org")
    wrong_body = client.post(f"/v1/unsubscribe?token={token}", content=b"unsubscribe=yes")
    assert wrong_body.status_code == 400
    assert_error(wrong_body.json(), "invalid_input", "body")

    missing = client.post("/v1/unsubscribe", **ONE_CLICK)  # type: ignore[arg-type]
    assert missing.status_code == 422
    assert_error(missing.json(), "invalid_request", "token")
    assert suppression.list_entries() == []
