"""``GET /v1/dead-letters`` (and one), ``POST /v1/dead-letters/{id}/replay``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from orchestration.api.auth import Operator, Reader
from orchestration.api.schemas.common import StoredId
from orchestration.api.schemas.control import DeadLetterOut, LetterStatus
from orchestration.control import deadletters

router = APIRouter(prefix="/v1/dead-letters", tags=["dead letters"])


@router.get("", response_model=list[DeadLetterOut], summary="List dead letters, last seen first")
def list_dead_letters(
    _: Reader,
    status: LetterStatus = LetterStatus.DEAD,
    queue: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[DeadLetterOut]:
    rows = deadletters.list_dead_letters(None if status is LetterStatus.ALL else str(status), queue, limit)
    return [DeadLetterOut.model_validate(r.as_dict()) for r in rows]


@router.get("/{dead_letter_id}", response_model=DeadLetterOut, summary="A dead letter with its body")
def get_dead_letter(dead_letter_id: StoredId, _: Reader) -> DeadLetterOut:
    return DeadLetterOut.model_validate(deadletters.get_dead_letter(dead_letter_id).as_dict())


@router.post("/{dead_letter_id}/replay", response_model=DeadLetterOut, summary="Publish a dead letter again")
def replay(dead_letter_id: StoredId, _: Operator) -> DeadLetterOut:
    """Publish it again, as received, to its queue, once its body decodes and its task is known;
    409 (nothing published) while it still could not be processed."""
    return DeadLetterOut.model_validate(deadletters.replay(dead_letter_id).as_dict())
