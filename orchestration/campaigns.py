"""CampaignManager: an event comes in, a route picks the orchestrator, a run opens (idempotently on
the event id) and runs inline or on the workers."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestration.engine import OrchestrationEngine
from orchestration.errors import EventValidationError, RouteNotFoundError
from orchestration.flows.validate import format_loc
from orchestration.orchestrators import RunHandle
from orchestration.orchestrators.base import Mode
from orchestration.registry import Registry


class Event(BaseModel):
    """An external event: a new lead, a webhook, a beat tick."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200, description="Idempotency key: the same id, the same run.")
    type: str = Field(min_length=1, max_length=120, pattern=r"^[a-z][a-z0-9_.\-]*$")
    payload: dict[str, Any]
    campaign: str | None = Field(None, max_length=120)
    occurred_at: datetime | None = None


class Route(BaseModel):
    """Events of ``event_type`` (and, when set, of ``campaign``) go to ``orchestrator``."""

    model_config = ConfigDict(frozen=True)

    event_type: str
    orchestrator: str
    campaign: str | None = None

    def matches(self, event: Event) -> bool:
        return self.event_type == event.type and self.campaign in (None, event.campaign)


DEFAULT_ROUTES = (Route(event_type="lead.created", orchestrator="lead_handling"),)


def parse_event(raw: Mapping[str, Any] | Event) -> Event:
    if isinstance(raw, Event):
        return raw
    try:
        return Event.model_validate(raw)
    except ValidationError as exc:
        raise EventValidationError([f"{format_loc(e['loc'])}: {e['msg']}" for e in exc.errors()]) from None


class CampaignManager:
    def __init__(
        self, engine: OrchestrationEngine, registry: Registry, routes: tuple[Route, ...] = DEFAULT_ROUTES
    ):
        self.engine = engine
        self.registry = registry
        # campaign-specific routes first, so they win over the generic one
        self.routes = tuple(sorted(routes, key=lambda r: r.campaign is None))

    def route(self, event: Event) -> str:
        for route in self.routes:
            if route.matches(event):
                return route.orchestrator
        known = ", ".join(sorted({r.event_type for r in self.routes}))
        raise RouteNotFoundError(
            f"type: no route for event type {event.type!r}"
            f"{f' in campaign {event.campaign!r}' if event.campaign else ''} (routed types: {known})"
        )

    def ingest_event(self, raw: Mapping[str, Any] | Event, *, mode: Mode = "async") -> RunHandle:
        """Validate, route, open the run with the event id as idempotency key, and start it."""
        event = parse_event(raw)
        orchestrator = self.registry.orchestrator(self.route(event))(self.engine)
        extra = {"event_type": event.type}
        if event.occurred_at is not None:
            extra["occurred_at"] = event.occurred_at.isoformat()
        return orchestrator.run(
            event.payload, mode=mode, event_id=event.id, campaign=event.campaign, extra=extra
        )


def manager() -> CampaignManager:
    """The CampaignManager of this process, bound to the app and the global registry."""
    import orchestration.orchestrators  # noqa: F401  (registers the orchestrators)
    from orchestration.app import engine
    from orchestration.registry import registry

    return CampaignManager(engine(), registry)
