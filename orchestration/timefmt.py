"""The one timestamp format campaignflow prints: ISO 8601 in UTC with a ``Z`` and microseconds,
e.g. ``2026-12-01T09:30:00.123456Z``.

The command line (tables and ``--json``), the envelope, rejected events, campaign reports and the
JSON logs all go through :func:`iso_utc`. The width is fixed (always six fraction digits), so the
strings sort in time order. Naive datetimes (SQLite keeps no zone, and some raw SELECTs return text)
are read as UTC. :data:`UtcDatetime` is the pydantic field type that does both. A foundation module:
it imports nothing of ours.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, overload

from pydantic import AfterValidator, PlainSerializer

__all__ = ["UtcDatetime", "as_utc", "iso_utc"]


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


#: A pydantic field type: a datetime held in UTC and written in JSON in the one timestamp format.
UtcDatetime = Annotated[
    datetime, AfterValidator(as_utc), PlainSerializer(iso_utc, return_type=str, when_used="json")
]
