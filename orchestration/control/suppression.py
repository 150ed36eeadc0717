"""The suppression list, for operators and recipients: list, add and remove addresses
(``campaignflow suppression``), and the one-click unsubscribe of RFC 8058 (the API's
``POST /v1/unsubscribe``). Every change is logged with where it came from
(``orchestration.store.suppression``); the events ``email.unsubscribed``, ``email.bounced`` and
``email.complained`` add to it through their flows (the ``suppress`` agent)."""

from __future__ import annotations

from typing import Any

from orchestration.errors import CampaignflowError, ConfigurationError, FieldError
from orchestration.settings import get_settings
from orchestration.store import sql_engine
from orchestration.store import suppression as store
from orchestration.store.guard_models import SUPPRESSION_REASONS
from orchestration.unsubscribe import normal_address, verify


class SuppressionNotFoundError(CampaignflowError, LookupError):
    """Raised when an address to take off the suppression list is not on it."""


def _entry(entry: store.Entry) -> dict[str, Any]:
    return {
        "address": entry.address,
        "reason": entry.reason,
        "source": entry.source,
        "detail": entry.detail,
        "created_at": entry.created_at,
    }


def check_address(address: str, field: str = "address") -> str:
    """``address`` as the list keys it, or a :class:`FieldError` naming ``field``."""
    value = normal_address(address)
    local, at, domain = value.rpartition("@")
    if not at or not local or "." not in domain or any(c in value for c in " \r\n<>,"):
        raise FieldError(
            [f"{field}: not a single email address: {address!r} (give one, like ada@example.com)"]
        )
    return value


def check_reason(reason: str) -> str:
    if reason not in SUPPRESSION_REASONS:
        known = ", ".join(SUPPRESSION_REASONS)
        raise FieldError([f"reason: unknown reason {reason!r}; use one of {known}"])
    return reason


def list_entries(*, reason: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The suppressed addresses, newest first."""
    with sql_engine().connect() as conn:
        return [
            _entry(e)
            for e in store.entries(conn, reason=check_reason(reason) if reason else None, limit=limit)
        ]


def add(
    address: str, *, reason: str = "manual", source: str = "cli", detail: str | None = None
) -> dict[str, Any]:
    """Suppress ``address``; the entry, with ``added`` false when it already was (its first reason stays)."""
    address, reason = check_address(address), check_reason(reason)
    with sql_engine().begin() as conn:
        added = store.add(conn, address, reason, source, detail)
        entry = store.find(conn, address)
    assert entry is not None
    return {**_entry(entry), "added": added}


def remove(address: str, *, source: str = "cli", detail: str | None = None) -> dict[str, Any]:
    """Take ``address`` off the list (logged); the entry it had."""
    address = check_address(address)
    with sql_engine().begin() as conn:
        entry = store.remove(conn, address, source, detail)
    if entry is None:
        raise SuppressionNotFoundError(
            f"{address} is not on the suppression list; see `campaignflow suppression list`"
        )
    return _entry(entry)


def history(address: str) -> list[dict[str, Any]]:
    """Every change of ``address`` on the list, oldest first."""
    with sql_engine().connect() as conn:
        rows = store.log(conn, check_address(address))
    return [
        {"action": r.action, "reason": r.reason, "source": r.source, "detail": r.detail, "at": r.at}
        for r in rows
    ]


def unsubscribe(token: str) -> dict[str, Any]:
    """The one-click unsubscribe: the address the signed ``token`` names is suppressed
    (``unsubscribed``, source ``one-click``). A bad token is a :class:`FieldError` on ``token``."""
    secret = get_settings().unsubscribe_secret
    if not secret:
        raise ConfigurationError(
            "unsubscribe links need CAMPAIGNFLOW_UNSUBSCRIBE_SECRET (the key that signed them)"
        )
    try:
        address = verify(secret, token)
    except ValueError as exc:
        raise FieldError([f"token: {exc} (use the link of the message's List-Unsubscribe header)"]) from None
    return add(address, reason="unsubscribed", source="one-click")
