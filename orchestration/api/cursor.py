"""The runs list's cursor: opaque to clients, the ``(created_at, run_id)`` key of the last run of a
page, which the next page starts after."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from orchestration.api.errors import ApiError
from orchestration.timefmt import iso_utc


def encode(created_at: datetime, run_id: str) -> str:
    text = json.dumps([iso_utc(created_at), run_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def decode(cursor: str, parameter: str = "cursor") -> tuple[datetime, str]:
    """The key in ``cursor``; a 400 naming ``parameter`` when it is not one this API gave."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, run_id = json.loads(raw.decode("utf-8"))
        at = datetime.fromisoformat(created)
        if not isinstance(run_id, str) or at.tzinfo is None:
            raise ValueError("not a cursor")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise ApiError(
            400,
            "invalid_cursor",
            f"{parameter}: not a cursor this API gave; pass next_cursor from the previous page as it "
            "is, or leave it out to start from the newest run",
            parameter,
        ) from None
    return at, run_id
