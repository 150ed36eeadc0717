"""CampaignManager: an event comes in, a route picks the orchestrator (or a named flow), a run opens
(idempotently on the event id) and runs inline or on the workers. An event that cannot become a run is
stored as a rejected event (see ``orchestration.control.rejected``), never dropped.

A rule may also (or only) resume waiting runs (``resume``: ``orchestration.control.correlate``):
its events go, as a signal, to the runs whose open wait correlates with them.

Routing rules come from three places, read at every ingest so a new rule needs no restart: the
database (``campaignflow routes add``), the file named by ``CAMPAIGNFLOW_ROUTES_FILE``, and the
built-in ``DEFAULT_ROUTES``. A rule for the event's campaign wins over a rule for any campaign; among
those, a database rule wins over a file rule, which wins over a built-in one.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orchestration.control import bodies, rejected
from orchestration.control.correlate import Resume, resume_waiting
from orchestration.engine.compiler import OrchestrationEngine
from orchestration.errors import ConfigurationError, EventValidationError, RouteNotFoundError
from orchestration.flows import FlowCatalog
from orchestration.flows.strict import StrictModel
from orchestration.flows.validate import format_loc
from orchestration.orchestrators import BaseOrchestrator, FlowRunner, RunHandle
from orchestration.orchestrators.base import Mode
from orchestration.registry import Registry
from orchestration.runtime import Runtime, current
from orchestration.settings import get_settings
from orchestration.store import routes as store
from orchestration.store import sql_engine
from orchestration.timefmt import iso_utc


class Event(BaseModel):
    """An external event: a new lead, a webhook, a beat tick."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200, description="Idempotency key: the same id, the same run.")
    type: str = Field(min_length=1, max_length=120, pattern=r"^[a-z][a-z0-9_.\-]*$")
    payload: dict[str, Any]
    campaign: str | None = Field(None, max_length=120)
    occurred_at: datetime | None = None
    priority: int = Field(
        0, ge=0, le=9, description="0 (default: marketing) to 9 (transactional): its run's steps go first."
    )


class Route(StrictModel):
    """Events of ``event_type`` (and, when set, of ``campaign``) go to ``orchestrator`` or ``flow``,
    and/or resume the runs waiting for them (``resume``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: str = Field(min_length=1, max_length=120, pattern=r"^[a-z][a-z0-9_.\-]*$")
    orchestrator: str | None = Field(None, description="A registered orchestrator.")
    campaign: str | None = Field(None, max_length=120)
    flow: str | None = Field(None, description="A flow of the catalog, run as it is.")
    resume: Resume | None = Field(None, description="Resume the runs whose wait correlates with the event.")
    id: int | None = Field(None, description="The database row, for rules kept there.")

    @model_validator(mode="after")
    def _one_target(self) -> Route:
        if self.orchestrator is not None and self.flow is not None:
            raise ValueError("give exactly one of orchestrator or flow")
        if self.orchestrator is None and self.flow is None and self.resume is None:
            raise ValueError("give exactly one of orchestrator or flow (or resume, to resume waiting runs)")
        return self

    @property
    def starts(self) -> bool:
        """True when its events start runs (it has an orchestrator or a flow)."""
        return self.orchestrator is not None or self.flow is not None

    @property
    def target(self) -> str:
        starts = f"orchestrator {self.orchestrator}" if self.orchestrator else f"flow {self.flow}"
        if self.resume is None:
            return starts
        return f"{starts} and {self.resume.describe()}" if self.starts else self.resume.describe()

    def matches(self, event: Event) -> bool:
        return self.event_type == event.type and self.campaign in (None, event.campaign)


DEFAULT_ROUTES = (
    Route(event_type="lead.created", orchestrator="lead_handling"),
    Route(event_type="message.requested", orchestrator="delivery"),
    Route(event_type="email.unsubscribed", flow="email_unsubscribed"),
    Route(event_type="email.bounced", flow="email_bounced"),
    Route(event_type="email.complained", flow="email_complained"),
)


def parse_event(raw: Mapping[str, Any] | Event) -> Event:
    """The event, checked: its body (``orchestration.control.bodies``: text a database can hold,
    JSON values, depth, size), then its shape. Raises :class:`EventValidationError` with every
    problem, each naming its field."""
    body = raw.model_dump() if isinstance(raw, Event) else raw
    problems = bodies.body_problems(body, max_bytes=get_settings().max_event_bytes)
    if isinstance(raw, Event) and not problems:
        return raw
    try:
        event = Event.model_validate(raw)
    except ValidationError as exc:
        problems += [f"{format_loc(e['loc'])}: {e['msg']}" for e in exc.errors()]
    if problems:
        raise EventValidationError(problems)
    return event


def file_routes(path: Path | None = None) -> tuple[Route, ...]:
    """The rules of ``CAMPAIGNFLOW_ROUTES_FILE`` (a YAML/JSON list of rules, or ``{routes: [...]}``)."""
    path = path or get_settings().routes_file
    if path is None:
        return ()
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = json.loads(text) if Path(path).suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"CAMPAIGNFLOW_ROUTES_FILE {path}: cannot read it ({exc})") from None
    items = data.get("routes") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ConfigurationError(f"CAMPAIGNFLOW_ROUTES_FILE {path}: expected a list of routing rules")
    routes: list[Route] = []
    for i, item in enumerate(items):
        try:
            routes.append(Route.model_validate(item))
        except ValidationError as exc:
            problems = "; ".join(f"{format_loc(['routes', i, *e['loc']])}: {e['msg']}" for e in exc.errors())
            raise ConfigurationError(f"CAMPAIGNFLOW_ROUTES_FILE {path}: {problems}") from None
    return tuple(routes)


def db_routes() -> tuple[Route, ...]:
    with sql_engine().connect() as conn:
        rows = store.list_routes(conn)
    return tuple(
        Route(
            id=r.id,
            event_type=r.event_type,
            campaign=r.campaign,
            orchestrator=r.orchestrator,
            flow=r.flow,
            resume=Resume(signal=r.resume_signal, key=r.resume_key) if r.resume_signal else None,
        )
        for r in rows
    )


def add_route(route: Route, runtime: Runtime | None = None) -> Route:
    """Keep a rule in the database (checked: its orchestrator or flow must exist)."""
    check_target(route, runtime)
    values = route.model_dump(exclude={"id", "resume"})
    if route.resume is not None:
        values |= {"resume_signal": route.resume.signal, "resume_key": route.resume.key}
    with sql_engine().begin() as conn:
        new_id = store.insert_route(conn, values)
    return route.model_copy(update={"id": new_id})


def remove_route(route_id: int) -> None:
    with sql_engine().begin() as conn:
        if not store.delete_route(conn, route_id):
            raise RouteNotFoundError(f"routing rule {route_id} not found; see `campaignflow routes list`")


def check_target(route: Route, runtime: Runtime | None = None) -> None:
    """Raise the registry's clear error when the rule names an unknown orchestrator or flow."""
    runtime = runtime or current()
    if route.orchestrator is not None:
        runtime.registry.orchestrator(route.orchestrator, path="orchestrator")
    elif route.flow is None:
        return  # resumes waiting runs only
    elif route.flow is not None:
        runtime.flows.get(route.flow)


def all_routes() -> tuple[Route, ...]:
    """Every rule in precedence order: database, file, built-in."""
    return (*db_routes(), *file_routes(), *DEFAULT_ROUTES)


class CampaignManager:
    """``routes=None`` reads the rules (database, file, built-in) at every ingest: no restart needed."""

    def __init__(
        self,
        engine: OrchestrationEngine,
        registry: Registry,
        flows: FlowCatalog,
        routes: tuple[Route, ...] | None = None,
    ):
        self.engine = engine
        self.registry = registry
        self.flows = flows
        self._routes = routes

    @property
    def routes(self) -> tuple[Route, ...]:
        routes = self._routes if self._routes is not None else all_routes()
        # campaign-specific routes first, so they win over the generic one (the sort is stable)
        return tuple(sorted(routes, key=lambda r: r.campaign is None))

    def route(self, event: Event) -> Route:
        routes = self.routes
        for route in routes:
            if route.starts and route.matches(event):
                return route
        known = ", ".join(sorted({r.event_type for r in routes})) or "none"
        raise RouteNotFoundError(
            f"type: no route for event type {event.type!r}"
            f"{f' in campaign {event.campaign!r}' if event.campaign else ''} (routed types: {known}); "
            f"add one with `campaignflow routes add {event.type} --flow NAME` (or --orchestrator NAME)"
        )

    def orchestrator_for(self, route: Route) -> BaseOrchestrator:
        if route.flow is not None:
            return FlowRunner(self.engine, self.flows.get(route.flow))
        assert route.orchestrator is not None
        return self.registry.orchestrator(route.orchestrator, path="route")(self.engine, self.flows)

    def ingest_event(self, raw: Mapping[str, Any] | Event, *, mode: Mode = "async") -> RunHandle:
        """Validate, route, open the run with the event id as idempotency key, and start it.

        An event that cannot become a run is stored as a rejected event and
        :class:`orchestration.control.rejected.EventRejectedError` (naming the stored row) is raised.
        """
        try:
            return self.open_run(raw, mode=mode)
        except rejected.REJECTABLE as exc:
            raise rejected.reject(raw, exc) from exc

    def open_run(self, raw: Mapping[str, Any] | Event, *, mode: Mode = "async") -> RunHandle:
        """:meth:`ingest_event` without storing rejections (the replay path uses it)."""
        event = parse_event(raw)
        resumes = [r.resume for r in self.routes if r.resume is not None and r.matches(event)]
        resumed: tuple[str, ...] = ()
        if resumes:
            runs, again = resume_waiting(event.model_dump(mode="json"), resumes)
            resumed = tuple(runs)
            if not any(r.starts and r.matches(event) for r in self.routes):
                return self._resumed_only(event, resumes, resumed, again)
        orchestrator = self.orchestrator_for(self.route(event))
        extra = {"event_type": event.type}
        if event.occurred_at is not None:
            extra["occurred_at"] = iso_utc(event.occurred_at)
        handle = orchestrator.run(
            event.payload,
            mode=mode,
            event_id=event.id,
            campaign=event.campaign,
            extra=extra,
            priority=event.priority,
        )
        return dataclasses.replace(handle, resumed=resumed) if resumed else handle

    def _resumed_only(
        self, event: Event, resumes: list[Resume], resumed: tuple[str, ...], again: bool
    ) -> RunHandle:
        """An event whose rules only resume runs: the first run it resumed answers for it; none is
        an error (the event is kept as rejected, replayable once a run waits for it)."""
        if not resumed:
            waited = "; ".join(r.describe() for r in resumes)
            raise RouteNotFoundError(
                f"type: no waiting run correlates with this {event.type!r} event ({waited}); "
                "replay it once a run waits for it"
            )
        return RunHandle(resumed[0], "resumed", duplicate=again, resumed=resumed)


def manager(runtime: Runtime | None = None) -> CampaignManager:
    """The CampaignManager of this process's runtime (its engine, registry and flows)."""
    runtime = runtime or current()
    return CampaignManager(runtime.engine, runtime.registry, runtime.flows)
