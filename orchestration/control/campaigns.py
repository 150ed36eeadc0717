"""Campaigns: the schedules beat starts runs from. A campaign as an operator writes it
(:class:`CampaignSpec`), the ``campaign`` table's add, list, pause and resume, and due-slot
computation (interval and cron, with a bounded catch-up). The tick that starts the due slots is in
``orchestration.control.ticks``; routing events to flows is ``orchestration.control.manager``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery.schedules import crontab
from pydantic import AliasChoices, ConfigDict, Field, field_validator, model_validator

from orchestration.errors import CampaignflowError
from orchestration.flows.strict import StrictModel
from orchestration.store import campaigns as store
from orchestration.store import sql_engine

__all__ = [
    "CRON_SCAN_DAYS",
    "CampaignExistsError",
    "CampaignNotFoundError",
    "CampaignSpec",
    "add_campaign",
    "cron_slots",
    "due_slots",
    "get_campaign",
    "interval_slots",
    "list_campaigns",
    "parse_cron",
    "remove_campaign",
    "set_enabled",
    "spec_of",
]

#: How many days back a cron schedule is searched for missed slots.
CRON_SCAN_DAYS = 400


class CampaignNotFoundError(CampaignflowError, LookupError):
    """Raised when no campaign has the given name (pause, resume). Lists the campaigns there are."""


class CampaignExistsError(CampaignflowError):
    """Raised when a campaign is added under a name already taken, without ``replace``."""


def parse_cron(expr: str) -> crontab:
    """A five-field cron expression (minute hour day-of-month month day-of-week) as a celery crontab.

    As in celery, a time must match every field (day of month AND day of week).
    """
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"cron {expr!r} needs 5 fields: minute hour day-of-month month day-of-week")
    minute, hour, dom, month, dow = fields
    return crontab(minute=minute, hour=hour, day_of_month=dom, month_of_year=month, day_of_week=dow)


class CampaignSpec(StrictModel):
    """A campaign as an operator writes it (flags, or one entry of a YAML/JSON file)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.\-]*$", max_length=80)
    event_type: str = Field(pattern=r"^[a-z][a-z0-9_.\-]*$", max_length=120)
    every_seconds: float | None = Field(
        None, gt=0, validation_alias=AliasChoices("every_seconds", "every"), description="Interval."
    )
    cron: str | None = Field(None, description="minute hour day-of-month month day-of-week")
    timezone: str = Field("UTC", description="IANA zone the cron fields are read in.")
    payload: dict[str, Any] = Field(
        default_factory=dict,
        validation_alias=AliasChoices("payload", "event_template"),
        description="Event payload template; each audience member (an object) is merged over it.",
    )
    audience: list[Any] | None = Field(
        None,
        description="One run per member and slot; objects merge into the payload, others go to member.",
    )
    max_catchup: int = Field(
        3, ge=1, le=1000, description="After downtime, start at most this many missed slots."
    )
    starts_at: datetime | None = Field(
        None, description="Anchor of an interval schedule (default: when added)."
    )
    enabled: bool = True

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Berlin") from None
        return value

    @field_validator("starts_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    @model_validator(mode="after")
    def _schedule(self) -> CampaignSpec:
        if (self.every_seconds is None) == (self.cron is None):
            raise ValueError("give exactly one schedule: every_seconds (interval) or cron")
        if self.cron is not None:
            try:
                parse_cron(self.cron)
            except ValueError as exc:
                raise ValueError(f"cron: {exc}") from None
        return self

    def row(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "event_type": self.event_type,
            "schedule_kind": "cron" if self.cron else "interval",
            "every_seconds": self.every_seconds,
            "cron": self.cron,
            "timezone": self.timezone,
            "event_template": self.payload,
            "audience": self.audience,
            "enabled": self.enabled,
            "max_catchup": self.max_catchup,
            "starts_at": self.starts_at,
        }


# ----------------------------------------------------------------------------------- the store


def add_campaign(spec: CampaignSpec, *, replace: bool = False) -> int:
    """Insert the campaign (or update it with ``replace``); the next tick picks it up."""
    values = spec.row()
    with sql_engine().begin() as conn:
        if replace:
            done = store.replace_campaign(conn, spec.name, values)
            if done is not None:
                return done
        new_id = store.insert_campaign(conn, values)
    if new_id is None:
        raise CampaignExistsError(f"name: campaign {spec.name!r} already exists; pass --replace to update it")
    return new_id


def list_campaigns() -> list[dict[str, Any]]:
    with sql_engine().connect() as conn:
        return store.list_campaigns(conn)


def _not_found(conn: Any, name: str) -> CampaignNotFoundError:
    names = store.campaign_names(conn)
    return CampaignNotFoundError(f"campaign {name!r} not found (campaigns: {', '.join(names) or 'none'})")


def get_campaign(name: str) -> dict[str, Any]:
    """The campaign called ``name`` (its columns); :class:`CampaignNotFoundError` when there is none."""
    with sql_engine().connect() as conn:
        row = store.get_campaign(conn, name)
        if row is None:
            raise _not_found(conn, name)
    return row


def spec_of(row: dict[str, Any]) -> CampaignSpec:
    """The spec a stored campaign was written from (the inverse of :meth:`CampaignSpec.row`)."""
    return CampaignSpec(
        name=row["name"],
        event_type=row["event_type"],
        every_seconds=row["every_seconds"],
        cron=row["cron"],
        timezone=row["timezone"],
        payload=row["event_template"] or {},
        audience=row["audience"],
        max_catchup=row["max_catchup"],
        starts_at=row["starts_at"],
        enabled=row["enabled"],
    )


def remove_campaign(name: str) -> None:
    """Delete a campaign and its slots; its runs stay. :class:`CampaignNotFoundError` when absent."""
    with sql_engine().begin() as conn:
        if not store.delete_campaign(conn, name):
            raise _not_found(conn, name)


def set_enabled(name: str, enabled: bool) -> None:
    """Pause or resume. Resuming does not catch up the slots that fell while paused."""
    with sql_engine().begin() as conn:
        if not store.set_enabled(conn, name, enabled):
            raise _not_found(conn, name)


# ------------------------------------------------------------------------------------ due slots


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def interval_slots(
    anchor: datetime, every: timedelta, last: datetime | None, now: datetime, limit: int
) -> tuple[list[datetime], int]:
    """Slots ``anchor + k*every`` in ``(last, now]`` (from ``anchor`` when never run): the newest
    ``limit`` of them, and how many older ones were skipped."""
    if now < anchor:
        return [], 0
    k_max = (now - anchor) // every
    k_min = 0 if last is None or last < anchor else (last - anchor) // every + 1
    if k_min > k_max:
        return [], 0
    first = max(k_min, k_max - limit + 1)
    return [anchor + k * every for k in range(first, k_max + 1)], first - k_min


def cron_slots(expr: str, tz: str, after: datetime, now: datetime, limit: int) -> tuple[list[datetime], int]:
    """Fire times of the cron in ``(after, now]``: the newest ``limit``, and 1 if older ones exist."""
    cron, zone = parse_cron(expr), ZoneInfo(tz)
    found: set[datetime] = set()
    day = now.astimezone(zone).date()
    stop = max(after.astimezone(zone).date(), day - timedelta(days=CRON_SCAN_DAYS))
    while day >= stop and len(found) <= limit:
        if _day_matches(cron, day):
            for hour in sorted(cron.hour, reverse=True):
                for minute in sorted(cron.minute, reverse=True):
                    local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
                    at = local.astimezone(UTC)
                    if after < at <= now:
                        found.add(at)
        day -= timedelta(days=1)
    slots = sorted(found)
    return slots[-limit:], int(len(slots) > limit)


def _day_matches(cron: crontab, day: date) -> bool:
    return (
        day.month in cron.month_of_year
        and day.day in cron.day_of_month
        and (day.weekday() + 1) % 7 in cron.day_of_week
    )


def due_slots(row: Any, now: datetime) -> tuple[list[datetime], int]:
    last = _aware(row.last_slot_at)
    anchor = _aware(row.starts_at) or _aware(row.created_at) or now
    if row.schedule_kind == "cron":
        return cron_slots(row.cron, row.timezone, last or anchor, now, row.max_catchup)
    return interval_slots(anchor, timedelta(seconds=row.every_seconds), last, now, row.max_catchup)
