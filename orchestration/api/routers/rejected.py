"""``GET /v1/rejected`` (and one), ``POST /v1/rejected/{id}/replay``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query
from starlette.concurrency import run_in_threadpool

from orchestration.api.auth import Operator, Reader
from orchestration.api.schemas.common import RunDescriptor, StoredId
from orchestration.api.schemas.control import RejectedOut, RejectedStatus, ReplayRequest
from orchestration.control import rejected
from orchestration.control.manager import manager

router = APIRouter(prefix="/v1/rejected", tags=["rejected events"])


@router.get("", response_model=list[RejectedOut], summary="List rejected events, newest first")
def list_rejected(
    _: Reader,
    status: RejectedStatus = RejectedStatus.REJECTED,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[RejectedOut]:
    rows = rejected.list_rejected(None if status is RejectedStatus.ALL else str(status), limit)
    return [RejectedOut.model_validate({**r.__dict__, "raw": None}) for r in rows]


@router.get("/{rejected_id}", response_model=RejectedOut, summary="A rejected event and its body")
def get_rejected(rejected_id: StoredId, _: Reader) -> RejectedOut:
    return RejectedOut.model_validate(rejected.get_rejected(rejected_id).__dict__)


@router.post(
    "/{rejected_id}/replay", response_model=RunDescriptor, status_code=202, summary="Replay a rejected event"
)
async def replay(
    rejected_id: StoredId, _: Operator, request: Annotated[ReplayRequest | None, Body()] = None
) -> RunDescriptor:
    """Ingest it again: its stored body, or ``event`` as a corrected body. Rejected again: 422 with
    the new reason (the same ``rejected_id``); replayed before: 409."""
    event = request.event if request is not None else None

    def run() -> RunDescriptor:
        handle = rejected.replay(rejected_id, event=event, manager=manager())
        return RunDescriptor(**handle.as_dict())

    return await run_in_threadpool(run)
