"""``POST /v1/webhooks/{source}``: events from providers that sign their calls (no bearer token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from orchestration.api.errors import ApiError
from orchestration.api.ingest import ingest_body
from orchestration.api.schemas.common import ErrorBody, RunDescriptor
from orchestration.api.schemas.events import BatchAccepted, events_request_body
from orchestration.api.signatures import SECRETS_SETTING, verify

router = APIRouter(prefix="/v1", tags=["events"])


@router.post(
    "/webhooks/{source}",
    status_code=202,
    response_model=RunDescriptor | BatchAccepted,
    responses={401: {"model": ErrorBody, "description": "A missing or wrong signature; stored nowhere."}},
    openapi_extra={"requestBody": events_request_body()},
    summary="Ingest a signed webhook call",
)
async def post_webhook(
    request: Request,
    source: Annotated[str, Path(max_length=80)],
    timestamp: Annotated[str | None, Header(alias="X-Campaignflow-Timestamp")] = None,
    signature: Annotated[str | None, Header(alias="X-Campaignflow-Signature")] = None,
) -> JSONResponse:
    """The body is one event or a batch, as for ``POST /v1/events``, signed with the source's secret
    (HMAC-SHA256 of the timestamp, a dot and the raw body, within the timestamp window)."""
    secrets = request.app.state.webhook_secrets.get(source)
    if not secrets:
        raise ApiError(
            404,
            "unknown_source",
            f"webhook source {source!r} is not configured ({SECRETS_SETTING})",
            "source",
        )
    raw = await request.body()
    verify(secrets, timestamp, signature, raw, tolerance=request.app.state.webhook_tolerance)
    answer = await run_in_threadpool(ingest_body, raw)
    return JSONResponse(answer.body, status_code=answer.status)
