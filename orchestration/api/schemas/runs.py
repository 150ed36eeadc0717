"""Runs: the list's filters and pages, retries, and bulk actions by filter."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestration.api.schemas.common import RunAction
from orchestration.names import RunStatus
from orchestration.timefmt import UtcDatetime


class RunSummary(BaseModel):
    run_id: str
    flow: str
    status: str
    campaign: str | None
    event_id: str | None
    created_at: UtcDatetime
    finished_at: UtcDatetime | None


class RunPage(BaseModel):
    items: list[RunSummary]
    next_cursor: str | None = Field(description="Pass it as `cursor` for the next page; null on the last.")


class RetryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payload_patch: dict[str, Any] | None = Field(
        None, description="A JSON merge patch (RFC 7396) for the stored payload; null removes a key."
    )


class SignalRequest(BaseModel):
    """A signal for a run's wait: its name, its data (any JSON), and an id of the caller's (the same
    id twice is one signal)."""

    model_config = ConfigDict(extra="forbid")

    signal: str = Field(min_length=1, max_length=120, description="The signal the run's wait waits for.")
    data: Any = Field(None, description="The signal's data: the wait's output `data`.")
    signal_id: str | None = Field(None, min_length=1, max_length=200, description="Deduplication id.")


class SignalAnswer(BaseModel):
    run_id: str
    signal: str
    signal_id: str
    status: str = Field(description="The run's status afterwards (`running` when the signal woke it).")
    duplicate: bool = Field(description="A signal with this id was already received: nothing changed.")
    resumed: bool = Field(description="It resumed a wait; false: kept until the wait starts.")


class RunFilterIn(BaseModel):
    """Which runs a bulk action takes: every field that is set must match."""

    model_config = ConfigDict(extra="forbid")

    status: list[RunStatus] = Field(default_factory=list)
    flow: str | None = Field(None, max_length=120)
    campaign: str | None = Field(None, max_length=120)
    event_id: str | None = Field(None, max_length=200)
    created_after: datetime | None = None
    created_before: datetime | None = None
    q: str | None = Field(None, min_length=1, max_length=200, description="Text in the payload.")


class BulkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filter: RunFilterIn = Field(default_factory=RunFilterIn)
    dry_run: bool = Field(True, description="Only count the runs the action would take (the default).")
    expected_count: int | None = Field(
        None, ge=0, description="Required to act: the dry run's count; a different count now is a 409."
    )


class BulkResult(BaseModel):
    matched: int
    dry_run: bool
    results: list[RunAction] = Field(default_factory=list)
