"""The one timestamp format campaignflow prints: ISO 8601 in UTC with a ``Z`` and microseconds,
e.g. ``2026-12-01T09:30:00.123456Z``.

The command line (tables and ``--json``), the envelope, rejected events, campaign reports and the
JSON logs all go through :func:`iso_utc`. The width is fixed (always six fraction digits), so the
strings sort in time order. Naive datetimes (SQLite keeps no zone, and some raw SELECTs return text)
are read as UTC. This module imports only the standard library.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload

__all__ = ["as_utc", "iso_utc"]


def as_utc(value: datetime | str) -> datetime:
    """``value`` as an aware datetime in UTC; naive values and naive ISO text are read as UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@overload
def iso_utc(value: datetime | str) -> str: ...
@overload
def iso_utc(value: None) -> None: ...
@overload
def iso_utc(value: datetime | str | None) -> str | None: ...
def iso_utc(value: datetime | str | None) -> str | None:
    """``2026-12-01T09:30:00.123456Z``: ISO 8601, UTC, ``Z``, always six fraction digits; None stays None."""
    if value is None:
        return None
    return as_utc(value).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
