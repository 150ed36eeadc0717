"""Events in (one or a batch) and what the API answers for each."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from orchestration.api.schemas.common import ErrorDetail
from orchestration.control.manager import Event


def events_request_body() -> dict[str, Any]:
    """The OpenAPI request body of ``POST /v1/events``: one event or a list of them. The route reads
    the raw body itself, so that malformed JSON is stored as a rejected event too."""
    event = Event.model_json_schema()
    event.pop("title", None)
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"oneOf": [event, {"type": "array", "items": event, "minItems": 1}]}
            }
        },
    }


class ItemResult(BaseModel):
    """One event of a batch: its run, or the rejection (``rejected_id`` and ``error``)."""

    index: int
    run_id: str | None
    status: str
    duplicate: bool = False
    rejected_id: int | None = None
    error: ErrorDetail | None = None


class BatchAccepted(BaseModel):
    results: list[ItemResult]
