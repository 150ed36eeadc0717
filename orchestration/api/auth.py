"""Bearer tokens: ``CAMPAIGNFLOW_API_TOKENS`` holds ``name:token:role`` entries, comma-separated, role
``read`` (look) or ``operate`` (look and act). A request without a known token is 401; a ``read``
token on an action is 403. Tokens are compared in constant time, and no message repeats one.

:func:`can_read` and :func:`can_operate` are the dependencies routes declare.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from orchestration.api.errors import ApiError
from orchestration.errors import ConfigurationError

TOKENS_SETTING = "CAMPAIGNFLOW_API_TOKENS"
#: Shortest token accepted: a guessable token is refused at start-up.
MIN_TOKEN_CHARS = 16
Role = Literal["read", "operate"]
ROLES: tuple[Role, ...] = ("read", "operate")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name and role (``anonymous``/``operate`` when auth is off)."""

    name: str
    role: Role

    @property
    def can_operate(self) -> bool:
        return self.role == "operate"


@dataclass(frozen=True)
class _Token:
    name: str
    digest: bytes
    role: Role


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenTable:
    """The tokens the API accepts; ``None`` as the table (see :func:`parse_tokens`) means no auth."""

    def __init__(self, tokens: list[_Token]) -> None:
        self._tokens = tokens

    def __len__(self) -> int:
        return len(self._tokens)

    def fingerprint(self) -> bytes:
        """A digest of every entry (name, token digest, role): a key derived from it changes
        whenever a token is added, removed or changes role (the console signs its sessions so)."""
        parts = [b"%s\0%s\0%s" % (t.name.encode("utf-8"), t.digest, t.role.encode()) for t in self._tokens]
        return hashlib.sha256(b"\n".join(parts)).digest()

    def find(self, presented: str) -> Principal | None:
        digest = _digest(presented)
        found = None
        for token in self._tokens:  # every entry is compared: the time does not tell which matched
            if hmac.compare_digest(token.digest, digest):
                found = Principal(token.name, token.role)
        return found


def parse_tokens(value: str) -> TokenTable:
    """``name:token:role[,...]`` -> the table; a bad entry is a :class:`ConfigurationError` naming its
    position and the fix, never its token."""
    tokens: list[_Token] = []
    names: set[str] = set()
    for number, entry in enumerate((e.strip() for e in value.split(",")), 1):
        name, _, rest = entry.partition(":")
        token, _, role = rest.rpartition(":")
        where = f"{TOKENS_SETTING}: entry {number}"
        if not name or not token or role not in ROLES:
            raise ConfigurationError(
                f"{where} is not name:token:role with role read or operate; set it like "
                "ci:a-long-random-token:operate (several: comma-separated)"
            )
        if len(token) < MIN_TOKEN_CHARS:
            raise ConfigurationError(
                f"{where} ({name}): the token is shorter than {MIN_TOKEN_CHARS} characters"
            )
        if name in names:
            raise ConfigurationError(f"{where}: the name {name!r} is used twice; give each token its own")
        names.add(name)
        tokens.append(_Token(name, _digest(token), "operate" if role == "operate" else "read"))
    return TokenTable(tokens)


#: Documents the scheme in OpenAPI; the check itself is :func:`principal` (for the one error shape).
bearer = HTTPBearer(auto_error=False, description="A token of CAMPAIGNFLOW_API_TOKENS.")

ANONYMOUS = Principal("anonymous", "operate")


def principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    """The caller, from ``Authorization: Bearer <token>``; 401 without a known token."""
    table: TokenTable | None = request.app.state.tokens
    if table is None:
        return ANONYMOUS
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(
            401, "unauthorized", "send Authorization: Bearer <token>", "Authorization", headers=challenge
        )
    found = table.find(credentials.credentials)
    if found is None:
        raise ApiError(401, "unauthorized", "unknown token", "Authorization", headers=challenge)
    return found


def can_read(who: Annotated[Principal, Depends(principal)]) -> Principal:
    return who


def can_operate(who: Annotated[Principal, Depends(principal)]) -> Principal:
    if not who.can_operate:
        raise ApiError(403, "forbidden", f"token {who.name!r} has role read; this needs an operate token")
    return who


Reader = Annotated[Principal, Depends(can_read)]
Operator = Annotated[Principal, Depends(can_operate)]
