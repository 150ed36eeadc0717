"""What every console page shares: who is looking (:func:`viewer`, :func:`actor`), the form body,
rendering a template, and the console's refusals (an ``ApiError``, answered as a page or a redirect).

Pages need a session: without auth (``--no-auth``) everybody may act; with tokens a browser that
has not logged in is sent to ``/login``. Every action is a POST form that carries the session's
CSRF token: a missing or wrong one is a 403, and so is an action by a ``read`` token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from orchestration.api.auth import ANONYMOUS, Principal, TokenTable
from orchestration.api.console import session
from orchestration.api.console.render import templates
from orchestration.api.errors import STATUS_CODES, ApiError
from orchestration.settings import Settings

#: Security headers of every console page: nothing from elsewhere, no framing, no caching.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
#: The field of every action form that carries the CSRF token.
CSRF_FIELD = "csrf"


def refusal(status: int, message: str, field: str | None = None) -> ApiError:
    """A refused console request: the console answers it as a page with ``status``."""
    return ApiError(status, STATUS_CODES.get(status, "refused"), message, field)


def to_login(location: str) -> ApiError:
    """Send a browser that has not logged in to the login form (a 303 to ``location``)."""
    return ApiError(303, "login_required", "log in first", headers={"Location": location})


@dataclass(frozen=True)
class Visit:
    """One request to a console page: the request, the browser's session and who is looking."""

    request: Request
    session: session.Session
    who: Principal

    @property
    def csrf(self) -> str:
        return session.csrf_token(self.request, self.session)

    @property
    def settings(self) -> Settings:
        settings: Settings = self.request.app.state.settings
        return settings


def _auth_on(request: Request) -> bool:
    table: TokenTable | None = request.app.state.tokens
    return table is not None


def login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login?next=" + quote(target, safe="")


def _who(request: Request, found: session.Session | None) -> Principal | None:
    if not _auth_on(request):
        return ANONYMOUS
    if found is not None and found.name is not None and found.role is not None:
        return Principal(found.name, found.role)
    return None


def viewer(request: Request) -> Visit:
    """Who looks at a page; a browser that has not logged in is sent to the login form."""
    found = session.ensure(request)
    who = _who(request, found)
    if who is None:
        raise to_login(login_url(request))
    return Visit(request, found, who)


async def form_fields(request: Request) -> dict[str, str]:
    """A urlencoded form body as a dict (the last value of a repeated field wins)."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    raw = await request.body()
    return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))


Form = Annotated[dict[str, str], Depends(form_fields)]


def actor(request: Request, form: Form) -> Visit:
    """Who acts: the form's CSRF token must be its session's (403), the browser logged in (else
    sent to the login form) and the token's role ``operate`` (403)."""
    found = session.current(request)
    if not session.csrf_ok(request, found, form.get(CSRF_FIELD)):
        raise refusal(403, "this form's CSRF token is missing or wrong; reload the page and try again")
    assert found is not None
    who = _who(request, found)
    if who is None:
        raise to_login("/login")
    if not who.can_operate:
        raise refusal(403, f"token {who.name!r} has role read; acting needs an operate token")
    return Visit(request, found, who)


Viewer = Annotated[Visit, Depends(viewer)]
Actor = Annotated[Visit, Depends(actor)]


def page(visit: Visit, template: str, http_status: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` for ``visit`` (the base layout gets who is looking and the CSRF token)."""
    html = templates.get_template(template).render(
        who=visit.who,
        auth=_auth_on(visit.request),
        csrf=visit.csrf,
        csrf_field=CSRF_FIELD,
        path=visit.request.url.path,
        **context,
    )
    response = HTMLResponse(html, status_code=http_status, headers=HEADERS)
    session.attach(visit.request, response)
    return response


def redirect(visit: Visit, location: str) -> Response:
    return session.attach(visit.request, RedirectResponse(location, status_code=303, headers=HEADERS))


def refusal_page(request: Request, status: int, message: str) -> Response:
    """An error page for a request that may have no session (a refused action, a missing run)."""
    found = session.ensure(request)
    who = _who(request, found) or Principal("", "read")
    visit = Visit(request, found, who)
    return page(visit, "error.html", http_status=status, status_code=status, message=message)
