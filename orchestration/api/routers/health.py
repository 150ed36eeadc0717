"""``/healthz`` (the process answers) and ``/readyz`` (the run store and the broker answer); neither
needs a token, so orchestrators' probes can call them."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from orchestration.api.errors import ApiError, log
from orchestration.ops.doctor import check_broker, check_database
from orchestration.runtime import current
from orchestration.settings import Settings

router = APIRouter(tags=["health"])
#: Seconds the broker check waits.
BROKER_TIMEOUT = 2.0


class Health(BaseModel):
    status: str


class Check(BaseModel):
    name: str
    ok: bool


class Ready(BaseModel):
    status: str
    checks: list[Check]


@router.get("/healthz", response_model=Health, summary="Liveness")
def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Ready, summary="Readiness: store and broker reachable")
def readyz(request: Request) -> Ready | JSONResponse:
    """Names what is not reachable, no more (no URL, no host): ``campaignflow doctor`` tells why."""
    settings: Settings = request.app.state.settings
    results = [
        check_database(settings.effective_database_url()),
        check_broker(current().app, BROKER_TIMEOUT),
    ]
    checks = [Check(name=c.name, ok=c.status != "FAIL") for c in results]
    failed = [c for c in results if c.status == "FAIL"]
    if not failed:
        return Ready(status="ready", checks=checks)
    for check in failed:
        log.warning("campaignflow API not ready: %s: %s", check.name, check.detail)
    names = ", ".join(c.name for c in failed)
    error = ApiError(
        503,
        "not_ready",
        f"not reachable: {names}; `campaignflow doctor` tells why",
        failed[0].name,
        checks=[c.model_dump() for c in checks],
    )
    return error.response()
