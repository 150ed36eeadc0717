"""Unknown query parameters are an error (400 naming the parameter), not silently ignored: a typo in
a filter (``?stauts=failed``) would otherwise list every run, or act on every run in a bulk action."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute

from orchestration.api.errors import ApiError

_known: dict[int, frozenset[str]] = {}


def _query_names(route: APIRoute) -> frozenset[str]:
    """The query parameters ``route`` declares, its dependencies' included."""
    names: set[str] = set()
    stack: list[Any] = [route.dependant]
    while stack:
        dependant = stack.pop()
        names.update(param.alias for param in dependant.query_params)
        stack.extend(dependant.dependencies)
    return frozenset(names)


def no_unknown_query(request: Request) -> None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    known = _known.get(id(route))
    if known is None:
        known = _known[id(route)] = _query_names(route)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        accepted = ", ".join(sorted(known)) or "none"
        raise ApiError(
            400,
            "unknown_parameter",
            f"unknown query parameter {unknown[0]!r} (this operation accepts: {accepted})",
            unknown[0],
        )
