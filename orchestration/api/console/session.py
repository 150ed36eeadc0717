"""The console's session: a signed, HttpOnly cookie that says who logged in (a token's name and
role, never the token) and carries the CSRF secret of the browser it was given to.

The signing key is derived from the API's tokens (:meth:`TokenTable.fingerprint`), so every replica
of the API shares it, a restart keeps sessions, and adding, removing or re-roling a token ends every
session. Without auth (``--no-auth``) the key is random per process.

A browser gets a session before it logs in (no name, no role): the login form's CSRF token is tied
to it, and logging in replaces it with a new one (a fresh ``sid``: no session fixation).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response

from orchestration.api.auth import ROLES, Role, TokenTable

COOKIE = "campaignflow_console"
#: Seconds a login lasts.
LIFETIME = 12 * 3600
_PURPOSE = b"campaignflow console session v1"


@dataclass(frozen=True)
class Session:
    """One browser's session: ``sid`` (random, the CSRF secret's seed), who logged in (``None``
    before login) and when it ends (epoch seconds)."""

    sid: str
    name: str | None
    role: Role | None
    expires: int

    @property
    def logged_in(self) -> bool:
        return self.name is not None and self.role is not None


def fresh(name: str | None = None, role: Role | None = None) -> Session:
    return Session(secrets.token_urlsafe(18), name, role, int(time.time()) + LIFETIME)


def key_of(request: Request) -> bytes:
    """This app's signing key (derived once, kept on the app's state)."""
    state = request.app.state
    key: bytes | None = getattr(state, "console_key", None)
    if key is None:
        table: TokenTable | None = state.tokens
        seed = table.fingerprint() if table is not None else secrets.token_bytes(32)
        key = hmac.new(seed, _PURPOSE, hashlib.sha256).digest()
        state.console_key = key
    return key


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(key: bytes, session: Session) -> str:
    body = _b64(json.dumps([session.sid, session.name, session.role, session.expires]).encode("utf-8"))
    mac = _b64(hmac.new(key, body.encode("ascii"), hashlib.sha256).digest())
    return f"{body}.{mac}"


def decode(key: bytes, value: str) -> Session | None:
    """The session in a cookie value, or None when it is not one this key signed, or it expired."""
    body, _, mac = value.partition(".")
    expected = _b64(hmac.new(key, body.encode("ascii", "replace"), hashlib.sha256).digest())
    if not mac or not hmac.compare_digest(mac, expected):
        return None
    try:
        sid, name, role, expires = json.loads(_unb64(body))
    except (ValueError, TypeError, binascii.Error):
        return None
    if not isinstance(sid, str) or not isinstance(expires, int) or expires < time.time():
        return None
    if role is not None and role not in ROLES:
        return None
    return Session(sid, name if isinstance(name, str) else None, _role(role), expires)


def _role(value: Any) -> Role | None:
    if value == "operate":
        return "operate"
    if value == "read":
        return "read"
    return None


def current(request: Request) -> Session | None:
    value = request.cookies.get(COOKIE)
    return decode(key_of(request), value) if value else None


def ensure(request: Request) -> Session:
    """The browser's session, or a new anonymous one (given to it by :func:`attach`)."""
    found = current(request)
    if found is None:
        found = fresh()
        request.state.new_session = found
    return found


def attach(request: Request, response: Response, session: Session | None = None) -> Response:
    """Set the cookie of ``session`` (default: one :func:`ensure` made for this request)."""
    session = session or getattr(request.state, "new_session", None)
    if session is not None:
        response.set_cookie(
            COOKIE,
            encode(key_of(request), session),
            max_age=max(0, session.expires - int(time.time())),
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/",
        )
    return response


def forget(response: Response) -> Response:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")
    return response


def csrf_token(request: Request, session: Session) -> str:
    """The token every form of this session carries: an HMAC of its ``sid``."""
    return _b64(hmac.new(key_of(request), b"csrf:" + session.sid.encode("ascii"), hashlib.sha256).digest())


def csrf_ok(request: Request, session: Session | None, presented: str | None) -> bool:
    if session is None or not presented:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), csrf_token(request, session).encode("ascii"))
