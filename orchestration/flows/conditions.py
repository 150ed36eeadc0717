"""Conditions are data, not code: comparisons on paths of the run's state, combined with all/any/not.

``{"field": "steps.score.points", "op": "gte", "value": 70}``,
``{"all": [...]}``, ``{"any": [...]}``, ``{"not": {...}}``. No ``eval`` anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from orchestration.flows.refs import RefSyntaxError, lookup, parse_path
from orchestration.flows.strict import StrictModel

Op = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "exists", "contains"]


def _ordered(fn: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(left: Any, right: Any) -> bool:
        try:
            return left is not None and bool(fn(left, right))
        except TypeError:
            return False

    return compare


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: bool(a == b),
    "ne": lambda a, b: bool(a != b),
    "gt": _ordered(lambda a, b: a > b),
    "gte": _ordered(lambda a, b: a >= b),
    "lt": _ordered(lambda a, b: a < b),
    "lte": _ordered(lambda a, b: a <= b),
    "in": lambda a, b: isinstance(b, list) and a in b,
    "not_in": lambda a, b: isinstance(b, list) and a not in b,
    "contains": lambda a, b: isinstance(a, (list, str, dict)) and b in a,
}


class Compare(StrictModel):
    """``{"field": PATH, "op": OP, "value": V}``: one comparison on the run's state."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str = Field(description="Path such as payload.email or steps.score.points.")
    op: Op = "eq"
    value: Any = None

    @field_validator("field")
    @classmethod
    def _path(cls, value: str) -> str:
        try:
            parse_path(value)
        except RefSyntaxError as exc:
            raise ValueError(str(exc)) from None
        return value

    def evaluate(self, scope: Mapping[str, Any]) -> bool:
        missing = object()
        left = lookup(scope, self.field, missing)
        if self.op == "exists":
            return (left is not missing and left is not None) == (self.value is not False)
        if left is missing:
            left = None
        return _OPS[self.op](left, self.value)

    def fields(self) -> list[str]:
        return [self.field]


class AllOf(StrictModel):
    """``{"all": [...]}``: true when every condition is."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    all: list[Condition] = Field(min_length=1)

    def evaluate(self, scope: Mapping[str, Any]) -> bool:
        return all(c.evaluate(scope) for c in self.all)

    def fields(self) -> list[str]:
        return [f for c in self.all for f in c.fields()]


class AnyOf(StrictModel):
    """``{"any": [...]}``: true when at least one condition is."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    any: list[Condition] = Field(min_length=1)

    def evaluate(self, scope: Mapping[str, Any]) -> bool:
        return any(c.evaluate(scope) for c in self.any)

    def fields(self) -> list[str]:
        return [f for c in self.any for f in c.fields()]


class Not(StrictModel):
    """``{"not": {...}}``: true when the condition is not."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    not_: Condition = Field(alias="not")

    def evaluate(self, scope: Mapping[str, Any]) -> bool:
        return not self.not_.evaluate(scope)

    def fields(self) -> list[str]:
        return self.not_.fields()


def _condition_kind(value: Any) -> str:
    if isinstance(value, AllOf):
        return "all"
    if isinstance(value, AnyOf):
        return "any"
    if isinstance(value, Not):
        return "not"
    if isinstance(value, BaseModel):
        return "compare"
    if isinstance(value, Mapping):
        for key in ("all", "any", "not"):
            if key in value:
                return key
    return "compare"


Condition = Annotated[
    Annotated[Compare, Tag("compare")]
    | Annotated[AllOf, Tag("all")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[Not, Tag("not")],
    Discriminator(_condition_kind),
]

AllOf.model_rebuild()
AnyOf.model_rebuild()
Not.model_rebuild()
