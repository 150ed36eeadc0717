"""References: how a step's input names the event payload and earlier steps' outputs.

A string value that starts with ``$`` is a reference; ``$$`` escapes a literal dollar.

- ``$payload`` / ``$payload.email``   the event payload, or a field of it
- ``$steps.score``  / ``$steps.score.points``  an earlier step's output, or a field of it
- ``$item`` / ``$item.email``  the current item inside a ``map``
- ``$run.run_id`` / ``$run.campaign`` / ``$run.flow``  run metadata

Conditions use the same paths without the ``$``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestration.errors import CampaignflowError

ROOTS = ("payload", "steps", "item", "run")
_MISSING = object()


class RefSyntaxError(CampaignflowError, ValueError):
    """Raised when a reference or condition path is malformed (empty segment, unknown root, no step).

    A ``ValueError`` too, so pydantic validators report it as a field error."""


def parse_path(path: str) -> tuple[str, ...]:
    """Split ``steps.score.points`` into parts and check the root."""
    parts = tuple(path.split("."))
    if not path or any(not p for p in parts):
        raise RefSyntaxError(f"empty segment in path {path!r}")
    if parts[0] not in ROOTS:
        raise RefSyntaxError(f"path {path!r} must start with one of {', '.join(ROOTS)}")
    if parts[0] == "steps" and len(parts) < 2:
        raise RefSyntaxError(f"path {path!r} must name a step: steps.<step_id>[.field]")
    return parts


def is_ref(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("$") and not value.startswith("$$")


def referenced_step(path: str) -> str | None:
    parts = parse_path(path)
    return parts[1] if parts[0] == "steps" else None


def lookup(scope: Mapping[str, Any], path: str, default: Any = None) -> Any:
    """Read ``path`` from a scope of ``{"payload", "steps", "item", "run"}``; ``default`` if absent."""
    current: Any = scope
    for part in parse_path(path):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return default
    return current


def resolve(template: Any, scope: Mapping[str, Any]) -> Any:
    """Replace every reference inside ``template`` (dicts and lists walked) by its value."""
    if isinstance(template, str):
        if template.startswith("$$"):
            return template[1:]
        if template.startswith("$"):
            return lookup(scope, template[1:])
        return template
    if isinstance(template, Mapping):
        return {k: resolve(v, scope) for k, v in template.items()}
    if isinstance(template, list):
        return [resolve(v, scope) for v in template]
    return template


def refs_in(template: Any) -> list[str]:
    """Every reference path (without ``$``) inside ``template``."""
    if is_ref(template):
        return [template[1:]]
    if isinstance(template, Mapping):
        return [r for v in template.values() for r in refs_in(v)]
    if isinstance(template, list):
        return [r for v in template for r in refs_in(v)]
    return []
