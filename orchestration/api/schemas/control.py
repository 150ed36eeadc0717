"""Rejected events and dead letters, as the API lists and shows them."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestration.timefmt import UtcDatetime


class RejectedStatus(StrEnum):
    REJECTED = "rejected"
    REPLAYED = "replayed"
    ALL = "all"


class LetterStatus(StrEnum):
    DEAD = "dead"
    REPLAYED = "replayed"
    ALL = "all"


class RejectedOut(BaseModel):
    id: int
    event_id: str | None
    reason: str
    problems: list[str]
    status: str
    raw_complete: bool
    replay_run_id: str | None
    created_at: UtcDatetime
    replayed_at: UtcDatetime | None
    raw: Any = Field(None, description="The body as received (only when one is shown).")


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event: dict[str, Any] | None = Field(None, description="A corrected body; default: the stored one.")


class DeadLetterOut(BaseModel):
    id: int
    queue: str
    task: str | None
    reason: str
    detail: str
    count: int
    status: str
    content_type: str | None
    content_encoding: str | None
    body_size: int
    first_seen: UtcDatetime
    last_seen: UtcDatetime
    replayed_at: UtcDatetime | None
    headers: dict[str, Any] | None = None
    body_text: str | None = Field(None, description="The body when it is UTF-8 (only when one is shown).")
    body_hex: str | None = None
    body_complete: bool | None = None
