"""``/login`` (a form: paste a token of CAMPAIGNFLOW_API_TOKENS), ``/logout``, ``/`` (to the runs),
and the console's static files (vendored in the package: nothing is fetched from elsewhere)."""

from __future__ import annotations

from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from orchestration.api.auth import Principal, TokenTable
from orchestration.api.console import session
from orchestration.api.console.web import CSRF_FIELD, HEADERS, Form, Visit, page, refusal
from orchestration.api.errors import ApiError

router = APIRouter(tags=["console"], include_in_schema=False)
#: The vendored files served under ``/static``, and their types.
STATIC = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}


def _safe_next(target: str | None) -> str:
    """Only a path of this site (never ``//elsewhere``, a URL, or a path with blanks or control
    characters that a browser would drop): no open redirect."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/runs"
    if "\\" in target or any(ch.isspace() or ord(ch) < 32 for ch in target):
        return "/runs"
    return target


def _anonymous(request: Request) -> Visit:
    return Visit(request, session.ensure(request), Principal("", "read"))


@router.get("/", include_in_schema=False)
def home() -> RedirectResponse:
    return RedirectResponse("/runs", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(
    request: Request, next_: Annotated[str | None, Query(alias="next", max_length=2000)] = None
) -> Response:
    table: TokenTable | None = request.app.state.tokens
    if table is None:
        return RedirectResponse(_safe_next(next_), status_code=303)
    return page(_anonymous(request), "login.html", next=_safe_next(next_), error=None)


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, form: Form) -> Response:
    """A known token starts a session of its name and role (a new session id); a wrong one is
    answered 401 with the form again."""
    table: TokenTable | None = request.app.state.tokens
    target = _safe_next(form.get("next"))
    if table is None:
        return RedirectResponse(target, status_code=303)
    before = session.current(request)
    if not session.csrf_ok(request, before, form.get(CSRF_FIELD)):
        raise refusal(403, "this form's CSRF token is missing or wrong; reload the login page and try again")
    who = table.find(form.get("token", "").strip())
    if who is None:
        return page(_anonymous(request), "login.html", http_status=401, next=target, error="unknown token")
    response = RedirectResponse(target, status_code=303, headers=HEADERS)
    return session.attach(request, response, session.fresh(who.name, who.role))


@router.post("/logout", response_class=HTMLResponse)
def logout(request: Request, form: Form) -> Response:
    if not session.csrf_ok(request, session.current(request), form.get(CSRF_FIELD)):
        raise refusal(403, "this form's CSRF token is missing or wrong; reload the page and try again")
    return session.forget(RedirectResponse("/login", status_code=303, headers=HEADERS))


@router.get("/static/{name}", include_in_schema=False)
def static(name: str) -> Response:
    kind = STATIC.get(name)
    if kind is None:
        raise ApiError(404, "not_found", f"no static file {name!r}")
    body = resources.files("orchestration.api").joinpath("static", name).read_bytes()
    return Response(body, media_type=kind, headers={"Cache-Control": "public, max-age=3600"})
