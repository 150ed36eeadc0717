"""``POST /v1/events``: one event or a batch, ingested like ``campaignflow.ingest_event``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from orchestration.api.auth import Operator, TokenTable
from orchestration.api.ingest import ingest_body, store_oversized
from orchestration.api.schemas.common import ErrorBody, RunDescriptor
from orchestration.api.schemas.events import BatchAccepted, events_request_body

router = APIRouter(prefix="/v1", tags=["events"])
PATH = "/v1/events"


@router.post(
    "/events",
    status_code=202,
    response_model=RunDescriptor | BatchAccepted,
    responses={422: {"model": ErrorBody, "description": "Rejected, and stored as a rejected event."}},
    openapi_extra={"requestBody": events_request_body()},
    summary="Ingest one event or a batch",
)
async def post_events(request: Request, _: Operator) -> JSONResponse:
    """Validate, route and open a run per event, idempotently on the event id (the same id answers
    the same run, ``duplicate: true``). An event that cannot become a run is stored as a rejected
    event, whatever its bytes, and answered 422 (malformed JSON: 400) with its ``rejected_id`` and
    the field at fault; replay it with ``POST /v1/rejected/{id}/replay`` after a fix."""
    raw = await request.body()
    answer = await run_in_threadpool(ingest_body, raw)
    return JSONResponse(answer.body, status_code=answer.status)


async def keep_oversized(scope: Scope, prefix: bytes, size: int) -> dict[str, Any]:
    """The body limit's hook: the start of an over-large event body, sent with an operate token, is
    stored as a rejected event (``rejected_id`` in the 413)."""
    if scope.get("path") != PATH or scope.get("method") != "POST":
        return {}
    tokens: TokenTable | None = scope["app"].state.tokens
    if tokens is not None:
        header = dict(scope.get("headers", [])).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        who = tokens.find(token.strip()) if scheme.lower() == "bearer" else None
        if who is None or not who.can_operate:
            return {}
    limit = scope["app"].state.max_body_bytes
    return {"rejected_id": await run_in_threadpool(store_oversized, prefix, size, limit)}
