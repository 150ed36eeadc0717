"""``POST /v1/unsubscribe``: the one-click unsubscribe of RFC 8058. A marketing message's
``List-Unsubscribe`` header names this URL with a signed token, and its ``List-Unsubscribe-Post:
List-Unsubscribe=One-Click`` header tells the mailbox provider to POST that body to it. The token is
the credential (no bearer token): it names one address, signed with ``CAMPAIGNFLOW_UNSUBSCRIBE_SECRET``."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from orchestration.api.errors import ApiError
from orchestration.api.schemas.common import ErrorBody
from orchestration.control import suppression
from orchestration.unsubscribe import ONE_CLICK_BODY

router = APIRouter(prefix="/v1", tags=["suppression"])


class Unsubscribed(BaseModel):
    address: str
    unsubscribed: bool
    already: bool


def _one_click(raw: bytes, content_type: str) -> bool:
    """The body is ``List-Unsubscribe=One-Click`` (form-encoded; multipart bodies carry the same field)."""
    if content_type.startswith("multipart/form-data"):
        return b'name="List-Unsubscribe"' in raw and b"One-Click" in raw
    fields = parse_qs(raw.decode("utf-8", "replace"))
    return fields.get("List-Unsubscribe") == ["One-Click"]


@router.post(
    "/unsubscribe",
    response_model=Unsubscribed,
    responses={
        400: {"model": ErrorBody, "description": "The body is not `List-Unsubscribe=One-Click`."},
        422: {"model": ErrorBody, "description": "The token is malformed or its signature does not match."},
    },
    summary="One-click unsubscribe (RFC 8058)",
)
async def post_unsubscribe(request: Request, token: Annotated[str, Query(max_length=2000)]) -> Unsubscribed:
    """Puts the address the token names on the suppression list (``unsubscribed``); a second POST
    answers the same (``already``: true)."""
    raw = await request.body()
    if not _one_click(raw, request.headers.get("content-type", "")):
        raise ApiError(400, "invalid_input", f"the body must be {ONE_CLICK_BODY} (RFC 8058)", "body")
    entry = await run_in_threadpool(suppression.unsubscribe, token)
    return Unsubscribed(address=entry["address"], unsubscribed=True, already=not entry["added"])
