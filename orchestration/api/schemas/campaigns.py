"""Campaigns as the API shows them, and the fields a PATCH may change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestration.timefmt import UtcDatetime


class CampaignOut(BaseModel):
    id: int
    name: str
    event_type: str
    schedule_kind: str
    every_seconds: float | None
    cron: str | None
    timezone: str
    payload: Any = Field(description="The event payload template.")
    audience: list[Any] | None
    enabled: bool
    max_catchup: int
    starts_at: UtcDatetime | None
    last_slot_at: UtcDatetime | None
    created_at: UtcDatetime
    updated_at: UtcDatetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> CampaignOut:
        return cls.model_validate({**row, "payload": row.get("event_template")})


class CampaignPatch(BaseModel):
    """Any field of a campaign but its name; ``enabled: false`` pauses it, ``true`` resumes it (from
    now on: slots missed while paused are not caught up)."""

    model_config = ConfigDict(extra="forbid")

    event_type: str | None = None
    every_seconds: float | None = None
    cron: str | None = None
    timezone: str | None = None
    payload: dict[str, Any] | None = None
    audience: list[Any] | None = None
    max_catchup: int | None = None
    starts_at: datetime | None = None
    enabled: bool | None = None
