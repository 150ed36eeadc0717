"""One error body everywhere: ``{"error": {"code", "message", "field"}}`` (plus, where it helps,
``rejected_id`` and ``problems``), whatever raised it: a route, the request validation, the router
(404, 405), the body limit (413) or a bug (500, no detail leaked).

:func:`install` adds the handlers to an app. Errors of the control plane become their HTTP status
here (:func:`status_of`), so routes just call the control plane and let its errors rise.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException

from orchestration.control.campaigns import CampaignExistsError
from orchestration.control.deadletters import NotReplayableError
from orchestration.control.rejected import AlreadyReplayedError, EventRejectedError, IncompleteBodyError
from orchestration.control.run_control import RunStateError
from orchestration.errors import CampaignflowError, ConfigurationError, FieldError
from orchestration.flows.validate import format_loc

log = logging.getLogger("campaignflow.api")

#: The code of each HTTP status the router or Starlette answers by itself.
STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    503: "unavailable",
}


class ApiError(CampaignflowError):
    """Raised by the HTTP API's routes and dependencies; answered as it is: its status, code, message
    and the field it names."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field, self.extra = status, code, message, field, extra
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "field": self.field, **self.extra}}

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers={**self.headers, **(headers or {})})


def field_of(problem: str) -> str | None:
    """``payload.email: required ...`` -> ``payload.email`` (the field a problem line names)."""
    head, sep, _ = problem.partition(": ")
    return head if sep and head and " " not in head else None


def rejected_error(exc: EventRejectedError, status: int = 422, code: str = "rejected") -> ApiError:
    """The answer to a stored rejected event: its id, the first problem and the field it names."""
    first = exc.problems[0] if exc.problems else str(exc)
    return ApiError(
        status,
        code,
        first,
        field_of(first),
        rejected_id=exc.rejected_id,
        reason=exc.kind,
        problems=exc.problems,
    )


def status_of(exc: CampaignflowError) -> tuple[int, str]:
    """The HTTP status and error code of an error of the control plane."""
    if isinstance(exc, FieldError):
        return 422, "invalid_input"
    if isinstance(exc, LookupError):
        return 404, "not_found"
    if isinstance(exc, RunStateError | AlreadyReplayedError | NotReplayableError | IncompleteBodyError):
        return 409, "conflict"
    if isinstance(exc, CampaignExistsError):
        return 409, "exists"
    if isinstance(exc, ConfigurationError):
        return 500, "configuration"
    return 400, "failed"


def from_campaignflow(exc: CampaignflowError) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, EventRejectedError):
        return rejected_error(exc)
    status, code = status_of(exc)
    if isinstance(exc, FieldError) and exc.problems:
        return ApiError(status, code, "; ".join(exc.problems), field_of(exc.problems[0]))
    return ApiError(status, code, str(exc))


def _loc(loc: Any) -> str:
    """``("query", "status", 0)`` -> ``status[0]``; ``("body", "payload", "x")`` -> ``payload.x``."""
    parts = list(loc)
    where = str(parts[0]) if parts else "request"
    if parts and parts[0] in ("query", "path", "body", "header"):
        parts = parts[1:]
    return format_loc(parts) if parts else where


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    field = _loc(first.get("loc", ()))
    message = "; ".join(f"{_loc(e.get('loc', ()))}: {e.get('msg', '')}" for e in errors)
    return ApiError(422, "invalid_request", message or "invalid request", field).response()


async def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = STATUS_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return ApiError(exc.status_code, code, message).response(dict(exc.headers or {}))


async def _api(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CampaignflowError)
    error = from_campaignflow(exc)
    if error.status >= 500:
        log.error("campaignflow API: %s", exc)
    return error.response()


async def _store(_: Request, exc: Exception) -> JSONResponse:
    log.warning("campaignflow API: run store error: %s", exc)
    return ApiError(503, "store_unavailable", "the run store is not reachable; try again shortly").response(
        {"Retry-After": "5"}
    )


async def _broker(_: Request, exc: Exception) -> JSONResponse:
    log.warning("campaignflow API: broker error: %s", exc)
    return ApiError(503, "broker_unavailable", "the broker is not reachable; try again shortly").response(
        {"Retry-After": "5"}
    )


async def _internal(_: Request, exc: Exception) -> JSONResponse:
    log.exception("campaignflow API: unexpected %s", type(exc).__name__, exc_info=exc)
    message = "unexpected error; this is a bug, the server log has its traceback"
    return ApiError(500, "internal", message).response()


def install(app: FastAPI) -> None:
    """Every error of ``app`` in the one shape."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(CampaignflowError, _api)
    for store_error in (OperationalError, InterfaceError, PoolTimeoutError, psycopg.OperationalError):
        app.add_exception_handler(store_error, _store)
    app.add_exception_handler(BrokerError, _broker)
    app.add_exception_handler(RedisConnectionError, _broker)
    app.add_exception_handler(Exception, _internal)
