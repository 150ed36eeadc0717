"""Event bodies as the HTTP API receives them: raw bytes become events through the same idempotent
ingest as ``campaignflow.ingest_event``. Whatever cannot become a run is stored as a rejected event
first (malformed JSON and over-large bodies too), so nothing an operate token sent is lost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi.encoders import jsonable_encoder

from orchestration.api.errors import ApiError, rejected_error
from orchestration.api.schemas.common import RunDescriptor
from orchestration.api.schemas.events import ItemResult
from orchestration.control import rejected
from orchestration.control.manager import manager
from orchestration.errors import EventValidationError
from orchestration.runtime import current


@dataclass(frozen=True)
class Answer:
    """An HTTP status and its JSON body."""

    status: int
    body: dict[str, Any]


def as_text(raw: bytes) -> str:
    """The body as text to store: invalid UTF-8 bytes kept visible as ``\\xNN`` escapes."""
    return raw.decode("utf-8", "backslashreplace")


def decode(raw: bytes) -> Any:
    """The JSON value of a body; a malformed one is stored as a rejected event (400)."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply to read" if isinstance(exc, RecursionError) else str(exc)
        problem = f"event: not valid JSON ({reason}); send one JSON object, or a list of them"
        stored = rejected.reject(as_text(raw), EventValidationError([problem]))
        raise rejected_error(stored, 400, "invalid_json") from None


def store_oversized(prefix: bytes, size: int, limit: int) -> int:
    """Store the start of a body over the API's limit as a rejected event; its id."""
    problem = (
        f"event: the request body has {size} bytes or more, over the limit of {limit} "
        "(CAMPAIGNFLOW_API_MAX_BODY_BYTES); send large content by reference (a URL or an id), or "
        "raise the limit"
    )
    return rejected.reject(as_text(prefix), EventValidationError([problem])).rejected_id


def _one(event: Any) -> RunDescriptor:
    handle = manager(current()).ingest_event(event, mode="async")
    return RunDescriptor(**handle.as_dict())


def ingest_body(raw: bytes) -> Answer:
    """One event (202 with its run descriptor) or a batch (202 with one result each); a rejected
    event answers 422 with its stored id and the field at fault (a batch: the first rejection, and
    every result, the accepted ones included)."""
    value = decode(raw)
    if not isinstance(value, list):
        try:
            return Answer(202, _one(value).model_dump())
        except rejected.EventRejectedError as exc:
            raise rejected_error(exc) from None
    if not value:
        problem = "event: an empty list; send one event, or a list of at least one"
        raise rejected_error(rejected.reject(value, EventValidationError([problem])), 400, "empty_batch")
    results = [_item(i, event) for i, event in enumerate(value)]
    refused = [r for r in results if r.error is not None]
    body = {"results": jsonable_encoder(results)}
    if not refused:
        return Answer(202, body)
    first = refused[0].error
    assert first is not None
    message = f"{len(refused)} of {len(results)} events rejected; [{refused[0].index}] {first.message}"
    field = f"[{refused[0].index}].{first.field}" if first.field else f"[{refused[0].index}]"
    error = ApiError(422, "rejected", message, field, rejected_id=refused[0].rejected_id)
    return Answer(422, {**error.body(), **body})


def _item(index: int, event: Any) -> ItemResult:
    try:
        run = _one(event)
    except rejected.EventRejectedError as exc:
        detail = rejected_error(exc).body()["error"]
        return ItemResult(
            index=index, run_id=None, status="rejected", rejected_id=exc.rejected_id, error=detail
        )
    return ItemResult(index=index, **run.model_dump())
