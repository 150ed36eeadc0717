"""What every event body must be before it is parsed: text a database can store, JSON values, at
most :data:`MAX_DEPTH` levels deep and at most ``CAMPAIGNFLOW_MAX_EVENT_BYTES`` as JSON.

Each problem names the field by its path and says the fix (``payload.name: contains a NUL
character; remove it``). The checks never recurse, so no body can make them fail.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from orchestration.store.jsontext import Path, escape, walk

#: Containers nested deeper than this (the event itself is level 1) make the event rejected.
MAX_DEPTH = 64
#: Top-level fields that may hold a time object when the event comes from Python.
TIME_FIELDS = frozenset({"occurred_at"})

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
#: Longest path printed whole; a longer one keeps its start and end.
_PATH_SEGMENTS = 8


def field_path(path: Path) -> str:
    """``("payload", "items", 3, "x")`` -> ``payload.items[3].x``; ``event`` for the body itself."""
    parts = list(path)
    if len(parts) > _PATH_SEGMENTS:
        parts = [*parts[:4], "…", *parts[-3:]]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "…":
            out += part
        elif _NAME.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(escape(part))}]"
    return out or "event"


def text_problem(text: str) -> str | None:
    """Why a database cannot hold ``text`` (a NUL character, a lone surrogate), and the fix."""
    if "\x00" in text:
        return "contains a NUL character; remove it"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start]
        return f"contains a lone surrogate (\\u{ord(bad):04x}), which is not valid Unicode; send UTF-8 text"
    return None


def _value_problem(path: Path, value: Any) -> str | None:
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value!r} is not a JSON number; send a finite number or null"
    if isinstance(value, datetime | date) and path in {(f,) for f in TIME_FIELDS}:
        return None
    if value is None or isinstance(value, bool | int | float | Mapping | list | tuple):
        return None
    return (
        f"a {type(value).__name__} is not a JSON value; "
        "send text, a number, true/false, null, a list or an object"
    )


def _key_problems(path: Path, value: Mapping[Any, Any]) -> list[str]:
    found = []
    for key in value:
        if not isinstance(key, str):
            found.append(f"{field_path(path)}: key {key!r} is not text; JSON object keys are text")
        elif (problem := text_problem(key)) is not None:
            found.append(f"{field_path((*path, key))}: the key {problem}")
    return found


def body_problems(raw: Any, *, max_bytes: int, max_depth: int = MAX_DEPTH) -> list[str]:
    """Every problem of ``raw`` (an event body as received), each ``path: problem; fix``."""
    found: list[str] = []
    for path, value, depth in walk(raw, max_depth):
        if depth > max_depth:
            return [
                *found,
                f"{field_path(path)}: nested deeper than {max_depth} levels; flatten it, or send large "
                "content by reference (a URL or an id)",
            ]
        if (problem := _value_problem(path, value)) is not None:
            found.append(f"{field_path(path)}: {problem}")
        if isinstance(value, Mapping):
            found.extend(_key_problems(path, value))
    if found:
        return found
    size = len(json.dumps(raw, ensure_ascii=False, default=str).encode("utf-8"))
    if size > max_bytes:
        return [
            f"event: {size} bytes as JSON, over the limit of {max_bytes} (CAMPAIGNFLOW_MAX_EVENT_BYTES); "
            "send large content by reference (a URL or an id), or raise the limit"
        ]
    return []
