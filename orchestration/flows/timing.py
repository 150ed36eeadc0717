"""Time in the flow language: durations (``30s``, ``15m``, ``2h``, ``3d``, or ``1h30m``), timestamps,
and send windows (the next moment inside ``start``-``end`` on the given days, in a time zone).

Window math works on wall-clock times through :mod:`zoneinfo`, and every comparison is made in UTC
(two datetimes that share a ``tzinfo`` compare by wall clock in Python, which is wrong across a DST
change). A window start that does not exist on a spring-forward day (02:30 in a zone that jumps
from 02:00 to 03:00) resolves with the offset before the change, i.e. just after the jump.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orchestration.errors import CampaignflowError

_DURATION = re.compile(r"^(?:\d+[smhd])+$")
_PART = re.compile(r"(\d+)([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")

#: The day names a window's ``days`` takes, Monday first (``datetime.weekday()`` order).
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class TimingError(CampaignflowError, ValueError):
    """Raised when a duration, timestamp, clock time or time zone cannot be used; the message says
    why and how to write one. A ``ValueError`` too, so pydantic validators report it as a field
    error."""


def parse_duration(text: str) -> timedelta:
    """``2d`` -> 2 days; ``1h30m`` -> 90 minutes."""
    value = str(text).strip()
    if not _DURATION.match(value):
        raise TimingError(
            f"{text!r} is not a duration; write a number and a unit: 30s, 15m, 2h, 3d (or 1h30m)"
        )
    seconds = sum(int(n) * _UNIT[unit] for n, unit in _PART.findall(value))
    if seconds <= 0:
        raise TimingError(f"{text!r} is zero; give a positive duration")
    return timedelta(seconds=seconds)


def parse_clock(text: str) -> time:
    """``09:00`` -> 09:00 (24-hour ``HH:MM``)."""
    match = _CLOCK.match(str(text))
    if match is None:
        raise TimingError(f"{text!r} is not a time of day; write HH:MM, 24-hour (09:00, 17:30)")
    return time(int(match[1]), int(match[2]))


def zone(name: Any) -> ZoneInfo:
    """The IANA time zone ``name`` (``Europe/Paris``)."""
    if not isinstance(name, str) or not name:
        raise TimingError(f"{name!r} is not a time zone; give an IANA name such as Europe/Paris")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimingError(f"unknown time zone {name!r}; give an IANA name such as Europe/Paris") from None


def parse_timestamp(value: Any) -> datetime:
    """An ISO 8601 timestamp with its offset (``2026-12-05T09:00:00Z``), as an aware UTC datetime."""
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise TimingError(
                f"{value!r} is not an ISO 8601 timestamp; write one such as 2026-12-05T09:00:00Z"
            ) from None
    if parsed.tzinfo is None:
        raise TimingError(f"{value!r} has no time zone offset; add one (2026-12-05T09:00:00Z, +02:00)")
    return parsed.astimezone(UTC)


def next_in_window(now: datetime, start: time, end: time, days: Iterable[str], tz: ZoneInfo) -> datetime:
    """The first moment at or after ``now`` that is inside the window (``start`` <= wall clock <
    ``end`` on one of ``days``, in ``tz``), in UTC. ``now`` itself when it is inside."""
    if not start < end:
        raise TimingError(f"window start {start:%H:%M} must be before its end {end:%H:%M}")
    allowed = {DAYS.index(d) for d in days}
    if not allowed:
        raise TimingError("a window needs at least one day")
    now_utc = now.astimezone(UTC)
    local_date = now_utc.astimezone(tz).date()
    for offset in range(-1, 9):  # yesterday too: the local date of a UTC moment may lag
        day = local_date + timedelta(days=offset)
        if day.weekday() not in allowed:
            continue
        opens = datetime.combine(day, start, tzinfo=tz).astimezone(UTC)
        closes = datetime.combine(day, end, tzinfo=tz).astimezone(UTC)
        if closes <= now_utc:
            continue
        return max(opens, now_utc)
    raise TimingError("no moment inside the window in the next week")  # unreachable with a day allowed


def payload_problems(sleeps: Iterable[Any], payload: dict[str, Any]) -> list[str]:
    """What the payload gives the flow's sleeps that cannot work: an unknown time zone or a bad
    timestamp at a ``$payload`` reference (checked at ingest; a missing one is the run's problem,
    named when the sleep is reached). ``sleeps``: the flow's ``SleepNode``s."""
    problems: list[str] = []
    for node in sleeps:
        checks: list[tuple[str, Callable[[Any], object]]] = []
        if node.window is not None and node.window.timezone.startswith("$payload."):
            checks.append((node.window.timezone, zone))
        if node.until is not None and node.until.startswith("$payload."):
            checks.append((node.until, parse_timestamp))
        for ref, check in checks:
            field = ref[1:]
            value: Any = payload
            for part in field.split(".")[1:]:
                value = value.get(part) if isinstance(value, dict) else None
            if value is None:
                continue
            try:
                check(value)
            except TimingError as exc:
                problems.append(f"{field}: {exc} (sleep {node.id!r} reads it)")
    return problems
