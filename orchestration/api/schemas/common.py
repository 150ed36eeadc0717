"""The error body every error answers with, and the run descriptor of an accepted event."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

#: The id of a stored row (rejected event, dead letter): a positive 64-bit integer.
StoredId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class ErrorDetail(BaseModel):
    """What went wrong: a stable ``code``, a message that names the fix, and the field at fault."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(description="Stable, machine-readable: not_found, rejected, invalid_request, ...")
    message: str
    field: str | None = Field(description="The field, parameter or header at fault, when there is one.")
    rejected_id: int | None = Field(None, description="The stored rejected event (rejected events only).")


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    error: ErrorDetail


#: Documented on every operation: any 4xx or 5xx answer has the error body.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": 'A client error: `{"error": {code, message, field}}`.'},
    "5XX": {"model": ErrorBody, "description": "The store or broker is unavailable (503), or a bug (500)."},
}


class RunDescriptor(BaseModel):
    """An accepted event's run: the same object ``campaignflow.ingest_event`` returns."""

    run_id: str
    status: str
    duplicate: bool = Field(description="True when the event id had opened this run before.")


class RunAction(BaseModel):
    """A run after an action (cancel, retry): its status, or the problem for this one run."""

    run_id: str
    status: str
    error: str | None = None
