"""Whatever its bytes, size or depth, an event sent to ``campaignflow.ingest_event`` becomes a run or
a stored rejected event with a reason naming the field: nothing fails as a raw database error.
Events go through ``send_task`` to the real worker, and the stored body reads back as it was sent."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest

from orchestration.control.manager import Route, add_route, manager
from orchestration.control.rejected import (
    EventRejectedError,
    IncompleteBodyError,
    get_rejected,
    list_rejected,
    replay,
)
from orchestration.names import ENGINE_QUEUE, INGEST_EVENT_TASK
from orchestration.settings import Settings, configure, get_settings
from tests.support.runs import wait_for_run
from tests.support.wiring import app, flows

NOOP_FLOW = {"name": "bad-input-noop", "steps": [{"id": "a", "agent": "noop"}]}


def nested(depth: int) -> Any:
    """A list nested ``depth`` levels deep (built without recursion)."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def event(event_id: str | None = "evt-bad", **payload: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "test.bad", "payload": {"who": "ada", **payload}}
    if event_id is not None:
        body["id"] = event_id
    return body


def ingest(body: Any) -> dict[str, Any]:
    result: dict[str, Any] = app.send_task(INGEST_EVENT_TASK, kwargs={"event": body}, queue=ENGINE_QUEUE).get(
        timeout=30
    )
    return result


@pytest.fixture
def bad_route(worker: object) -> Route:
    flows().add(NOOP_FLOW)
    return add_route(Route(event_type="test.bad", flow="bad-input-noop"))


@pytest.fixture
def small_events(bad_route: Route) -> Iterator[int]:
    """Events over 4 KiB are too large (the in-process worker reads the same settings)."""
    before = get_settings()
    configure(Settings.model_validate({**before.model_dump(), "max_event_bytes": 4096}))
    try:
        yield 4096
    finally:
        configure(before)


CASES = [
    ("nul in the id", {**event(None), "id": "x\u0000y"}, "id: contains a NUL character; remove it"),
    ("nul in a payload string", event(name="a\u0000b"), "payload.name: contains a NUL character; remove it"),
    (
        "lone surrogate in the payload",
        event(name="\ud800"),
        "payload.name: contains a lone surrogate (\\ud800), which is not valid Unicode; send UTF-8 text",
    ),
    (
        "lone surrogate deep in a list",
        event(items=[{"x": "ok"}, {"x": "bad \udfff"}]),
        "payload.items[1].x: contains a lone surrogate (\\udfff)",
    ),
    (
        "nul in a payload key",
        {**event(), "payload": {"a\u0000b": 1}},
        'payload["a\\\\u0000b"]: the key contains a NUL character',
    ),
    ("nul in the type", {**event(), "type": "test.bad\u0000"}, "type: contains a NUL character; remove it"),
    (
        "surrogate in the campaign",
        {**event(), "campaign": "\udc80vip"},
        "campaign: contains a lone surrogate",
    ),
    ("nan in the payload", event(score=math.nan), "payload.score: nan is not a JSON number"),
    ("infinity in the payload", event(score=math.inf), "payload.score: inf is not a JSON number"),
    ("deeper than 64 levels", event(tree=nested(100)), "nested deeper than 64 levels; flatten it"),
    ("nul in an unknown field", {**event(), "extra\u0000": "\u0000"}, "extra\\\\u0000"),
    ("not an object", "just text", "Input should be a valid dictionary"),
    ("nothing", None, "Input should be a valid dictionary"),
]


@pytest.mark.parametrize(("body", "problem"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_text_and_shapes_are_rejected_and_stored_as_sent(
    bad_route: Route, body: Any, problem: str
) -> None:
    result = ingest(body)
    assert (result["status"], result["run_id"], result["reason"]) == ("rejected", None, "invalid_event"), (
        result
    )
    assert problem in result["error"], result["error"]
    row = get_rejected(result["rejected_id"])
    assert row.reason.startswith("invalid_event: "), row.reason
    assert any(problem in p for p in row.problems), row.problems
    assert row.raw_complete
    if "nan" not in json.dumps(body, default=str).lower() and "inf" not in str(body):
        assert row.raw == body  # NUL characters and lone surrogates read back as they were sent


def test_a_large_event_is_rejected_with_the_limit_and_kept_in_part(small_events: int) -> None:
    result = ingest(event("evt-large", notes="x" * 10_000))
    assert result["status"] == "rejected"
    assert "over the limit of 4096 (CAMPAIGNFLOW_MAX_EVENT_BYTES)" in result["error"], result["error"]
    row = get_rejected(result["rejected_id"])
    assert not row.raw_complete
    assert isinstance(row.raw, str)
    assert row.raw.startswith('{"type": "test.bad"')
    assert len(row.raw.encode()) <= 4096
    with pytest.raises(IncompleteBodyError, match="--event FILE"):
        replay(row.id, manager=manager())
    # within the limit the same event becomes a run
    ok = ingest(event("evt-large-fixed", notes="x" * 100))
    assert ok["status"] == "queued"
    assert wait_for_run(ok["run_id"]).status == "succeeded"


def test_ten_thousand_levels_from_python_are_rejected_not_a_recursion_error(bad_route: Route) -> None:
    with pytest.raises(EventRejectedError) as info:
        manager().ingest_event(event("evt-deep", tree=nested(10_000)))
    assert "payload.tree[0][0]…[0][0][0]: nested deeper than 64" in str(info.value)
    assert "nested deeper than 64 levels" in str(info.value)
    row = get_rejected(info.value.rejected_id)
    assert row.event_id == "evt-deep"
    assert not row.raw_complete
    assert "<cut: nested too deeply>" in row.raw


def test_rejected_events_without_an_id_are_counted_once_per_body(bad_route: Route) -> None:
    first = ingest(event(None, name="\u0000"))
    again = ingest(event(None, name="\u0000"))
    other = ingest(event(None, name="\u0000\u0000"))
    assert first["rejected_id"] == again["rejected_id"] != other["rejected_id"]
    with_id = ingest(event("evt-same-body", name="\u0000"))
    assert with_id["rejected_id"] not in (first["rejected_id"], other["rejected_id"])
    assert {r.event_id for r in list_rejected()} == {None, "evt-same-body"}
    assert len(list_rejected()) == 3


def test_a_good_event_after_bad_ones_still_becomes_a_run(bad_route: Route) -> None:
    for body in (event("evt-x", name="\ud800"), event("evt-y", tree=nested(80))):
        assert ingest(body)["status"] == "rejected"
    ok = ingest(event("evt-good", name="é ✓ 😀"))
    assert ok["status"] == "queued"
    assert not ok["duplicate"]
    env = wait_for_run(ok["run_id"])
    assert env.status == "succeeded"
    assert env.metadata.payload["name"] == "é ✓ 😀"
