"""The console's Jinja2 templates (autoescaped) and the filters they use: times, durations, JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from orchestration.timefmt import as_utc


def when(value: datetime | None) -> str:
    """``2026-12-04 09:30:01 UTC`` (seconds are enough on a page; the API has the rest)."""
    if value is None:
        return "-"
    return as_utc(value).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    """``850 ms``, ``12.3 s``, ``4 min 3 s``, ``2 h 5 min``."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def between(start: datetime | None, end: datetime | None) -> float | None:
    """Seconds from ``start`` to ``end`` (to now while ``end`` is unset)."""
    if start is None:
        return None
    return ((as_utc(end) if end else datetime.now(UTC)) - as_utc(start)).total_seconds()


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


templates = Environment(
    loader=PackageLoader("orchestration.api.console", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters.update(when=when, duration=duration, pretty=pretty)
templates.globals.update(between=between)
