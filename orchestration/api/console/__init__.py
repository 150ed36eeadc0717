"""The web console (``campaignflow api`` serves it at ``/``): server-rendered pages (Jinja2) over
the same control plane and store as the HTTP API, protected by the same tokens.

``session`` (the signed session cookie and its CSRF token), ``web`` (who looks, who acts, rendering,
refusals), ``render`` (templates and filters), ``graph`` (a flow as SVG, coloured by a run's
statuses), ``timeline`` (a run's tries and waits as SVG), ``pages/`` (one router per resource).
:func:`install` adds it to an app made by :func:`orchestration.api.app.create_app`.
"""

from __future__ import annotations

import inspect

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.responses import RedirectResponse

from orchestration.api.console.pages import campaigns, flows, letters, login, overview, run, runs
from orchestration.api.console.web import HEADERS, refusal_page
from orchestration.api.errors import from_campaignflow
from orchestration.errors import CampaignflowError

ROUTERS = (
    login.router,
    runs.router,
    run.router,
    letters.router,
    campaigns.router,
    flows.router,
    overview.router,
)


def _is_console(request: Request) -> bool:
    route = request.scope.get("route")
    return "console" in (getattr(route, "tags", None) or [])


def install(app: FastAPI) -> FastAPI:
    """Add the console's pages to ``app``; errors on its pages are answered as pages."""
    for router in ROUTERS:
        app.include_router(router)
    api_handler = app.exception_handlers[CampaignflowError]

    async def campaignflow_error(request: Request, exc: Exception) -> Response:
        if not _is_console(request):
            answer = api_handler(request, exc)
            return await answer if inspect.isawaitable(answer) else answer
        assert isinstance(exc, CampaignflowError)
        error = from_campaignflow(exc)
        location = error.headers.get("Location")
        if 300 <= error.status < 400 and location:
            return RedirectResponse(location, status_code=error.status, headers=HEADERS)
        return refusal_page(request, error.status, error.message)

    app.add_exception_handler(CampaignflowError, campaignflow_error)
    return app
