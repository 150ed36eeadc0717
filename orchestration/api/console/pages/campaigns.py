"""``GET /campaigns``: every campaign with its schedule, its next slots, and pause/resume."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from orchestration.api.console.web import Actor, Form, Viewer, page, redirect
from orchestration.control import campaigns
from orchestration.control.campaigns import parse_cron

router = APIRouter(tags=["console"], include_in_schema=False)
#: Slots shown per campaign.
NEXT_SLOTS = 3
#: How far ahead a cron schedule is searched for its next slots.
CRON_AHEAD_DAYS = 400


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _next_cron(expr: str, tz: str, now: datetime, count: int) -> list[datetime]:
    cron, zone = parse_cron(expr), ZoneInfo(tz)
    found: list[datetime] = []
    day = now.astimezone(zone).date()
    for _ in range(CRON_AHEAD_DAYS):
        if (
            day.month in cron.month_of_year
            and day.day in cron.day_of_month
            and (day.weekday() + 1) % 7 in cron.day_of_week
        ):
            for hour in sorted(cron.hour):
                for minute in sorted(cron.minute):
                    at = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone).astimezone(UTC)
                    if at > now:
                        found.append(at)
                    if len(found) == count:
                        return found
        day += timedelta(days=1)
    return found


def next_slots(row: dict[str, Any], now: datetime, count: int = NEXT_SLOTS) -> list[datetime]:
    """The campaign's next ``count`` slots after ``now`` (none while it is paused)."""
    if not row["enabled"]:
        return []
    if row["schedule_kind"] == "cron":
        return _next_cron(row["cron"], row["timezone"], now, count)
    every = timedelta(seconds=float(row["every_seconds"]))
    anchor = _aware(row["starts_at"]) or _aware(row["created_at"]) or now
    if now < anchor:
        return [anchor + k * every for k in range(count)]
    k = (now - anchor) // every + 1
    return [anchor + (k + i) * every for i in range(count)]


@router.get("/campaigns", response_class=HTMLResponse)
def campaigns_page(visit: Viewer, notice: Annotated[str | None, Query(max_length=80)] = None) -> HTMLResponse:
    now = datetime.now(UTC)
    rows = [{**row, "next": next_slots(row, now)} for row in campaigns.list_campaigns()]
    return page(visit, "campaigns.html", rows=rows, notice=notice)


@router.post("/campaigns/{name}/{action}", response_class=HTMLResponse)
def pause_or_resume(name: str, action: str, visit: Actor, form: Form) -> Response:
    """``pause`` or ``resume`` (from now on: the slots missed while paused are not caught up)."""
    if action not in ("pause", "resume"):
        return page(visit, "error.html", http_status=404, status_code=404, message=f"no action {action!r}")
    row = campaigns.get_campaign(name)
    if form.get("confirm") != "yes":
        return page(
            visit,
            "confirm.html",
            title=f"{action.capitalize()} campaign {name}?",
            action=f"/campaigns/{name}/{action}",
            back="/campaigns",
            fields={},
            button=f"{action.capitalize()} it",
            kind=action,
            campaign=row,
        )
    campaigns.set_enabled(name, action == "resume")
    return redirect(visit, f"/campaigns?notice={action}d+{name}")
