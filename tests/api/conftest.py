"""The HTTP API in-process (``fastapi.testclient``) over the session's real runtime: Postgres, Redis
and the in-process worker of ``tests/conftest.py``; tokens of both roles, and a routed test flow."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from orchestration.api.app import create_app
from orchestration.api.auth import parse_tokens
from orchestration.control.manager import Route, add_route
from orchestration.settings import get_settings
from tests.support.wiring import flows

READ_TOKEN = "read-token-0123456789"
OPERATE_TOKEN = "operate-token-0123456789"
TOKENS = f"viewer:{READ_TOKEN}:read,ops:{OPERATE_TOKEN}:operate"
WEBHOOK_SECRET = "crm-secret-0123456789"
READ = {"Authorization": f"Bearer {READ_TOKEN}"}
OPERATE = {"Authorization": f"Bearer {OPERATE_TOKEN}"}

#: Step b fails for good while ``fail_attempts`` is above its tries; a retry with a patch fixes it.
FLAKY = {
    "name": "api-flaky",
    "input_required": ["fail_attempts"],
    "steps": [
        {"id": "a", "agent": "effect"},
        {"id": "b", "agent": "fail", "input": {"permanent": True, "fail_attempts": "$payload.fail_attempts"}},
    ],
}
#: A step that takes a while: a run stays live long enough to be cancelled.
SLOW = {"name": "api-slow", "steps": [{"id": "nap", "agent": "sleep", "input": {"seconds": 1}}]}
FLAKY_TYPE = "test.flaky"
SLOW_TYPE = "test.slow"


def make_app(**settings: Any) -> FastAPI:
    values = {"webhook_secrets": f"crm:{WEBHOOK_SECRET}", **settings}
    return create_app(tokens=parse_tokens(TOKENS), settings=get_settings().model_copy(update=values))


@pytest.fixture
def client(worker: object) -> Iterator[TestClient]:
    """The API with both tokens, the webhook source ``crm``, and ``test.flaky``/``test.slow`` routed."""
    for definition in (FLAKY, SLOW):
        if definition["name"] not in flows():
            flows().add(definition)
    add_route(Route(event_type=FLAKY_TYPE, flow=str(FLAKY["name"])))
    add_route(Route(event_type=SLOW_TYPE, flow=str(SLOW["name"])))
    with TestClient(make_app(), raise_server_exceptions=False) as test_client:
        yield test_client


def event(event_id: str, event_type: str = FLAKY_TYPE, **payload: Any) -> dict[str, Any]:
    return {"id": event_id, "type": event_type, "payload": payload or {"fail_attempts": 0}}


def assert_error(body: Any, code: str, field: str | None = None) -> dict[str, Any]:
    """The one error shape, with ``code`` (and ``field`` when given)."""
    assert set(body) >= {"error"}, body
    error: dict[str, Any] = body["error"]
    assert {"code", "message", "field"} <= set(error), error
    assert isinstance(error["message"], str)
    assert error["message"]
    assert error["code"] == code, error
    if field is not None:
        assert error["field"] == field, error
    return error
