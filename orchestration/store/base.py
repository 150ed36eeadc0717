"""What the store modules share: the clock, timezone repair, and the run statuses they test."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeAlias, overload

from sqlalchemy.engine import Row

#: A result row of any columns.
AnyRow: TypeAlias = Row[*tuple[Any, ...]]


def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def aware(value: datetime) -> datetime: ...
@overload
def aware(value: None) -> None: ...
@overload
def aware(value: datetime | None) -> datetime | None: ...
def aware(value: datetime | None) -> datetime | None:
    """``value`` in UTC when the database handed it back naive (SQLite keeps no zone)."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
