"""Signed webhooks: each source has a secret (``CAMPAIGNFLOW_WEBHOOK_SECRETS``, ``source:secret``
comma-separated; a source may have two while its secret is rotated). A call carries

- ``X-Campaignflow-Timestamp``: Unix seconds when it was sent, and
- ``X-Campaignflow-Signature``: ``sha256=`` and the hex HMAC-SHA256, under the source's secret, of
  the timestamp, a dot and the raw body (``f"{timestamp}.".encode() + body``).

A missing or wrong signature, or a timestamp outside the window, is 401; such a call is stored
nowhere. Signatures are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

from orchestration.api.errors import ApiError
from orchestration.errors import ConfigurationError

SECRETS_SETTING = "CAMPAIGNFLOW_WEBHOOK_SECRETS"
TIMESTAMP_HEADER = "X-Campaignflow-Timestamp"
SIGNATURE_HEADER = "X-Campaignflow-Signature"
SOURCE = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,79}$")
MIN_SECRET_CHARS = 16


def parse_secrets(value: str | None) -> dict[str, list[bytes]]:
    """``source:secret[,...]`` -> secrets by source; a bad entry names its position, never its secret."""
    found: dict[str, list[bytes]] = {}
    for number, entry in enumerate((e.strip() for e in (value or "").split(",") if e.strip()), 1):
        source, _, secret = entry.partition(":")
        if not SOURCE.match(source) or len(secret) < MIN_SECRET_CHARS:
            raise ConfigurationError(
                f"{SECRETS_SETTING}: entry {number} is not source:secret with a lower-case source name "
                f"and a secret of at least {MIN_SECRET_CHARS} characters"
            )
        found.setdefault(source, []).append(secret.encode("utf-8"))
    return found


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    return "sha256=" + hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def _unauthorized(message: str, field: str) -> ApiError:
    return ApiError(401, "bad_signature", message, field)


def verify(
    secrets: list[bytes],
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    *,
    tolerance: float,
    now: float | None = None,
) -> None:
    """Raise a 401 unless ``signature`` signs ``body`` at ``timestamp`` within ``tolerance`` seconds."""
    if not timestamp or not timestamp.isdigit() or len(timestamp) > 12:
        raise _unauthorized(f"send {TIMESTAMP_HEADER}: the Unix time in seconds", TIMESTAMP_HEADER)
    skew = abs((time.time() if now is None else now) - int(timestamp))
    if skew > tolerance:
        raise _unauthorized(
            f"{TIMESTAMP_HEADER} is {skew:.0f} s from now, outside the window of {tolerance:g} s; "
            "sign each call when it is sent (and check the sender's clock)",
            TIMESTAMP_HEADER,
        )
    if not signature:
        raise _unauthorized(f"send {SIGNATURE_HEADER}: sha256=<hex HMAC>", SIGNATURE_HEADER)
    presented = signature.strip().encode("ascii", "replace")
    matched = False
    for secret in secrets:  # every secret is tried: the time does not tell which one matched
        matched |= hmac.compare_digest(sign(secret, timestamp, body).encode("ascii"), presented)
    if not matched:
        raise _unauthorized(
            f"{SIGNATURE_HEADER} does not match: sign the timestamp, a dot and the raw body with "
            "HMAC-SHA256 under the source's secret",
            SIGNATURE_HEADER,
        )
