"""Unsubscribe tokens and the ``List-Unsubscribe`` headers of a marketing message (RFC 2369, RFC 8058).

A token names one address and is signed with ``CAMPAIGNFLOW_UNSUBSCRIBE_SECRET`` (HMAC-SHA256): the
address, base64url, a dot, the signature, base64url. Whoever holds a message's header can
unsubscribe its recipient and nobody else. The token does not expire: a List-Unsubscribe link must
keep working for as long as the message sits in a mailbox. Imports nothing of ours.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

#: The body RFC 8058 sends to the URL, and the header that announces it.
ONE_CLICK_BODY = "List-Unsubscribe=One-Click"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, address: str) -> bytes:
    return hmac.new(secret.encode(), f"unsubscribe:{address}".encode(), hashlib.sha256).digest()


def normal_address(address: str) -> str:
    """The form the suppression list keys on: trimmed, lower case."""
    return address.strip().lower()


def sign(secret: str, address: str) -> str:
    address = normal_address(address)
    return f"{_b64(address.encode())}.{_b64(_signature(secret, address))}"


def verify(secret: str, token: str) -> str:
    """The address ``token`` names; a ``ValueError`` saying why when it is malformed or its
    signature does not match."""
    encoded, dot, signature = token.strip().rpartition(".")
    if not dot or not encoded:
        raise ValueError("the token is not address.signature")
    try:
        address = _unb64(encoded).decode()
        given = _unb64(signature)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("the token is not base64url") from None
    if not hmac.compare_digest(given, _signature(secret, address)):
        raise ValueError("the token's signature does not match")
    return address


def with_token(url: str, token: str) -> str:
    """``url`` with ``token=...`` added to its query."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode({"token": token})) if q)
    return urlunsplit(parts._replace(query=query))


def headers(address: str, *, secret: str, url: str | None, mailto: str | None) -> dict[str, str]:
    """``List-Unsubscribe`` (the https URL first, then the mailto) and, with a URL,
    ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``."""
    token = sign(secret, address)
    targets: list[str] = []
    if url:
        targets.append(f"<{with_token(url, token)}>")
    if mailto:
        targets.append(f"<mailto:{mailto}?subject={quote('unsubscribe ' + token)}>")
    found = {"List-Unsubscribe": ", ".join(targets)} if targets else {}
    if url:
        found["List-Unsubscribe-Post"] = ONE_CLICK_BODY
    return found
