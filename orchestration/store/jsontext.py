"""JSON text that any database stores, whatever the value holds.

Postgres refuses a NUL character in text and in JSONB (even escaped as ``\\u0000``), and no UTF-8
database takes a lone surrogate (``\\ud800``): a body holding one made even storing its rejection
fail. Here a value becomes JSON text in which those characters are written as JSON escapes
(``\\u0000``, ``\\ud800``): six ASCII characters that any text column keeps, and that ``json.loads``
turns back into the very same value. Other text stays as it is (``é`` is not escaped).

A value nested deeper than :data:`MAX_STORED_DEPTH` is cut below that depth, and a text longer than
the caller's cap is cut at the cap; :class:`StoredJSON` says whether the text is the whole value.
Values JSON has no type for become text (times in ISO 8601). Nothing here recurses, so no depth of
nesting can make it fail.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

#: Values nested deeper than this are cut before they are written as JSON.
MAX_STORED_DEPTH = 200
#: What stands in for a container that was cut.
CUT_MARK = "<cut: nested too deeply>"

#: A path into a value: keys of objects and indexes of arrays.
Path = tuple[str | int, ...]


@dataclass(frozen=True)
class StoredJSON:
    """``text``: JSON text, safe for any text column. ``complete``: ``json.loads(text)`` gives the
    whole value (nothing was cut). ``size``: bytes of the whole text, in UTF-8. ``digest``: SHA-256
    of the whole text (before any cut for length), to recognise the same value again."""

    text: str
    complete: bool
    size: int
    digest: str


def escape(text: str) -> str:
    """``text`` with NUL characters and lone surrogates written as ``\\u0000``-style escapes, so a
    database takes it (event ids, reasons, task names); other characters are kept."""
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def walk(value: Any, max_depth: int) -> Iterator[tuple[Path, Any, int]]:
    """Every ``(path, value, depth)`` of a value, parents before children (the value itself is at
    depth 1). A container deeper than ``max_depth`` is yielded but not entered, so the walk ends
    after at most ``max_depth`` levels whatever the nesting."""
    stack: list[tuple[Path, Any, int]] = [((), value, 1)]
    while stack:
        path, item, depth = stack.pop()
        yield path, item, depth
        if depth > max_depth:
            continue
        if isinstance(item, Mapping):
            children: list[tuple[Path, Any, int]] = [
                ((*path, k if isinstance(k, str | int) else repr(k)), v, depth + 1) for k, v in item.items()
            ]
        elif isinstance(item, list | tuple):
            children = [((*path, i), v, depth + 1) for i, v in enumerate(item)]
        else:
            continue
        stack.extend(reversed(children))


def depth_over(value: Any, max_depth: int) -> bool:
    """True when ``value`` nests containers deeper than ``max_depth`` levels."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _leaf(value: Any) -> Any:
    """A leaf JSON can write: JSON types as they are; times as ISO text; anything else as text
    (an integer too long for ``json`` as a note of its size)."""
    if value is None or isinstance(value, str | bool | float):
        return value
    if isinstance(value, int):
        return value if value.bit_length() < 10_000 else f"<an integer of {value.bit_length()} bits>"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def plain(value: Any, max_depth: int) -> Any:
    """A copy of ``value`` made of JSON types only: object keys as text, other leaves by
    :func:`_leaf`, and containers deeper than ``max_depth`` replaced by :data:`CUT_MARK`."""
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, str | int, int]] = [(value, root, 0, 1)]
    while stack:
        item, parent, key, depth = stack.pop()
        if isinstance(item, Mapping | list | tuple) and depth > max_depth:
            parent[key] = CUT_MARK
        elif isinstance(item, Mapping):
            copy: dict[str, Any] = {str(k): None for k in item}
            parent[key] = copy
            stack.extend((v, copy, str(k), depth + 1) for k, v in item.items())
        elif isinstance(item, list | tuple):
            items: list[Any] = [None] * len(item)
            parent[key] = items
            stack.extend((v, items, i, depth + 1) for i, v in enumerate(item))
        else:
            parent[key] = _leaf(item)
    return root[0]


def store_json(value: Any, *, max_bytes: int | None = None) -> StoredJSON:
    """``value`` as JSON text for a text column: see the module's notes. ``max_bytes`` caps the
    stored text (the digest and size are still those of the whole text)."""
    complete = not depth_over(value, MAX_STORED_DEPTH)
    try:
        if not complete:
            raise ValueError("too deep")
        text = json.dumps(value, ensure_ascii=False, allow_nan=True, default=_leaf)
    except (TypeError, ValueError):  # cut, keys JSON has no form for, integers too long to write
        text = json.dumps(plain(value, MAX_STORED_DEPTH), ensure_ascii=False, allow_nan=True)
    # a lone surrogate is the only character UTF-8 cannot hold; backslashreplace writes it as the
    # JSON escape of the same code unit (it can only sit inside a JSON string)
    data = text.encode("utf-8", "backslashreplace")
    digest = hashlib.sha256(data).hexdigest()
    if max_bytes is not None and len(data) > max_bytes:
        return StoredJSON(data[:max_bytes].decode("utf-8", "ignore"), False, len(data), digest)
    return StoredJSON(data.decode("utf-8"), complete, len(data), digest)


def load_json(text: str, complete: bool) -> Any:
    """What :func:`store_json` stored: the value when the text is whole, else the text itself."""
    return json.loads(text) if complete else text
