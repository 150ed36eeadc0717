"""The web console over the session's real runtime (Postgres, Redis, the in-process worker of
``tests/conftest.py``): the API app with the console installed, tokens of both roles, and routed test
flows. ``login`` gives a client a session the way a browser gets one (the form, its CSRF token)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from orchestration.api import console
from orchestration.api.app import create_app
from orchestration.api.auth import parse_tokens
from orchestration.control.manager import Route, add_route, manager
from orchestration.runtime import current
from orchestration.settings import get_settings
from tests.support.runs import wait_for_run
from tests.support.threads import release_all_result_backends
from tests.support.wiring import flows

READ_TOKEN = "console-read-token-0123456789"
OPERATE_TOKEN = "console-operate-token-0123456789"
TOKENS = f"viewer:{READ_TOKEN}:read,ops:{OPERATE_TOKEN}:operate"
FLOWER_URL = "http://flower.test:5555"

#: Step ``b`` fails for good while ``fail_attempts`` is above its tries; a retry with a patch fixes it.
FLAKY = {
    "name": "console-flaky",
    "input_required": ["fail_attempts"],
    "steps": [
        {"id": "a", "agent": "effect"},
        {
            "id": "b",
            "agent": "fail",
            "input": {"fail_attempts": "$payload.fail_attempts"},
            "retry": {"max_attempts": 2, "backoff_seconds": 0.2, "jitter": False},
        },
    ],
}
#: Steps that take a while: a run stays live long enough to be cancelled.
SLOW = {
    "name": "console-slow",
    "steps": [
        {"id": "nap", "agent": "sleep", "input": {"seconds": 5}},
        {"id": "after", "agent": "noop"},
    ],
}
#: Every node kind, for the graph.
SHAPES = {
    "name": "console-shapes",
    "steps": [
        {"id": "first", "agent": "noop", "fallback": {"id": "first_fallback", "agent": "noop"}},
        {
            "kind": "parallel",
            "id": "both",
            "members": [{"id": "left", "agent": "noop"}, {"id": "right", "agent": "noop"}],
        },
        {
            "kind": "branch",
            "id": "route",
            "cases": [
                {
                    "when": {"field": "payload.hot", "op": "eq", "value": True},
                    "then": {"id": "hot", "agent": "noop"},
                }
            ],
            "else": {"id": "cold", "agent": "noop"},
        },
        {"kind": "map", "id": "each", "over": "$payload.items", "do": {"id": "one", "agent": "noop"}},
    ],
}
FLAKY_TYPE, SLOW_TYPE, SHAPES_TYPE = "console.flaky", "console.slow", "console.shapes"


def make_app(**settings: Any) -> FastAPI:
    values = {"flower_url": FLOWER_URL, **settings}
    app = create_app(tokens=parse_tokens(TOKENS), settings=get_settings().model_copy(update=values))
    return console.install(app)


def route_test_flows() -> None:
    for definition, event_type in ((FLAKY, FLAKY_TYPE), (SLOW, SLOW_TYPE), (SHAPES, SHAPES_TYPE)):
        if definition["name"] not in flows():
            flows().add(definition)
        add_route(Route(event_type=event_type, flow=str(definition["name"])))


@pytest.fixture
def client(worker: object) -> Iterator[TestClient]:
    """The API and the console, with both tokens and the test flows routed; not logged in."""
    route_test_flows()
    with TestClient(make_app(), raise_server_exceptions=False, follow_redirects=False) as test_client:
        yield test_client
    release_all_result_backends()  # of the server's threads, which sent tasks (retries) and ended


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def login(client: TestClient, token: str) -> str:
    """Log ``client`` in with ``token`` through the form; the CSRF token of its new session."""
    form = client.get("/login")
    assert form.status_code == 200, form.text
    resp = client.post("/login", data={"csrf": csrf_of(form.text), "token": token, "next": "/runs"})
    assert resp.status_code == 303, resp.text
    page = client.get("/runs")
    assert page.status_code == 200, page.text
    return csrf_of(page.text)


def event(event_id: str, event_type: str = FLAKY_TYPE, **payload: Any) -> dict[str, Any]:
    return {"id": event_id, "type": event_type, "payload": payload or {"fail_attempts": 0}}


def ingest(client: TestClient, *events: dict[str, Any]) -> list[str]:
    resp = client.post("/v1/events", json=list(events), headers={"Authorization": f"Bearer {OPERATE_TOKEN}"})
    assert resp.status_code == 202, resp.text
    return [r["run_id"] for r in resp.json()["results"]]


def ingest_direct(*events: dict[str, Any]) -> list[str]:
    """Events ingested as the API does, without a client (the browser tests serve the app)."""
    return [manager(current()).ingest_event(e, mode="async").run_id for e in events]


def failed_run(client: TestClient, event_id: str) -> str:
    [run_id] = ingest(client, event(event_id, fail_attempts=99, keep="me"))
    assert wait_for_run(run_id).status == "failed"
    return run_id
