"""The runs list's query parameters and a bulk action's filter, as the store's ``RunFilter``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

from fastapi import Query

from orchestration.api.errors import ApiError
from orchestration.api.schemas.runs import RunFilterIn
from orchestration.names import RunStatus
from orchestration.store.run_search import RunFilter
from orchestration.timefmt import as_utc


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def run_filter(f: RunFilterIn, only: Iterable[str] = ()) -> RunFilter:
    """The store's filter; ``only`` narrows the statuses (a bulk cancel takes live runs only)."""
    statuses = tuple(str(s) for s in f.status)
    allowed = tuple(only)
    if allowed:
        statuses = tuple(s for s in statuses if s in allowed) if statuses else allowed
        if not statuses:
            raise ApiError(
                422,
                "invalid_filter",
                f"filter.status: this action takes only runs in {', '.join(allowed)}",
                "filter.status",
            )
    if f.created_after and f.created_before and _utc(f.created_after) >= _utc(f.created_before):  # type: ignore[operator]
        raise ApiError(422, "invalid_filter", "created_after must be before created_before", "created_after")
    return RunFilter(
        statuses=statuses,
        flow=f.flow,
        campaign=f.campaign,
        event_id=f.event_id,
        created_after=_utc(f.created_after),
        created_before=_utc(f.created_before),
        text=f.q,
    )


def list_filter(
    status: Annotated[list[RunStatus] | None, Query(description="Repeat for several.")] = None,
    flow: Annotated[str | None, Query(max_length=120)] = None,
    campaign: Annotated[str | None, Query(max_length=120)] = None,
    event_id: Annotated[str | None, Query(max_length=200)] = None,
    created_after: Annotated[
        datetime | None, Query(description="ISO 8601; UTC unless it has an offset.")
    ] = None,
    created_before: Annotated[datetime | None, Query(description="ISO 8601, exclusive.")] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=200, description="Text in the payload.")] = None,
) -> RunFilter:
    """The runs list's filters, as query parameters."""
    return run_filter(
        RunFilterIn(
            status=status or [],
            flow=flow,
            campaign=campaign,
            event_id=event_id,
            created_after=created_after,
            created_before=created_before,
            q=q,
        )
    )
