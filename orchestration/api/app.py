"""The app factory: :func:`create_app` builds the HTTP API over the control plane of this process's
runtime (bootstrapped before). Pages of the web console, or any other router, plug in through
``routers``; they get the same error body, size limit and tokens (``auth.Reader``/``auth.Operator``).
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Depends, FastAPI

import orchestration
from orchestration.api import docs, errors
from orchestration.api.auth import TOKENS_SETTING, TokenTable, parse_tokens
from orchestration.api.limits import BodyLimit
from orchestration.api.query import no_unknown_query
from orchestration.api.routers import API_ROUTERS
from orchestration.api.routers.events import keep_oversized
from orchestration.api.schemas.common import ERROR_RESPONSES
from orchestration.api.signatures import parse_secrets
from orchestration.errors import ConfigurationError
from orchestration.settings import Settings, get_settings

DESCRIPTION = """\
Ingest events, and see, search and act on every run of campaignflow. Everything here reads the run
store, so it survives restarts. Send `Authorization: Bearer <token>` (CAMPAIGNFLOW_API_TOKENS); a
`read` token can look, an `operate` token can also act. Every error answers
`{"error": {"code", "message", "field"}}`.
"""


def tokens_from(settings: Settings, *, no_auth: bool = False) -> TokenTable | None:
    """The tokens to accept (None: no auth). Without tokens the API refuses to start, unless
    ``no_auth`` says so on purpose."""
    if no_auth and settings.api_tokens:
        raise ConfigurationError(f"--no-auth: {TOKENS_SETTING} is set too; unset it or drop --no-auth")
    if no_auth:
        return None
    if not settings.api_tokens:
        raise ConfigurationError(
            f"{TOKENS_SETTING} is not set; set it to name:token:role (role read or operate), or pass "
            "--no-auth to serve the API without authentication on purpose"
        )
    return parse_tokens(settings.api_tokens)


def create_app(
    *,
    tokens: TokenTable | None,
    settings: Settings | None = None,
    routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """The API with ``tokens`` (None: every caller may act), then ``routers`` (console pages)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="campaignflow",
        version=orchestration.__version__,
        description=DESCRIPTION,
        docs_url=None,  # served by api.docs from the package, not from a CDN
        redoc_url=None,
        openapi_url="/openapi.json",
        responses=ERROR_RESPONSES,
        dependencies=[Depends(no_unknown_query)],
    )
    app.state.settings = settings
    app.state.tokens = tokens
    app.state.max_body_bytes = settings.api_max_body_bytes
    app.state.webhook_secrets = parse_secrets(settings.webhook_secrets)
    app.state.webhook_tolerance = float(settings.webhook_tolerance_seconds)
    errors.install(app)
    for router in (*API_ROUTERS, docs.router, *routers):
        app.include_router(router)
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes, on_too_large=keep_oversized)
    return app
