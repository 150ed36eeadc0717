"""Declarations reject what they do not know: every declaration model (agents, retry policies, flow
nodes and conditions, routes, campaigns) derives from :class:`StrictModel`, so a typo such as
``global_concurency=2`` is an error naming the field, the likely one and the known ones, never a
setting silently ignored."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import PydanticCustomError
from pydantic_core.core_schema import ValidatorFunctionWrapHandler


def known_fields(model: type[BaseModel]) -> list[str]:
    """The names ``model`` accepts, as they are written in a declaration (aliases included)."""
    names: set[str] = set()
    for name, field in model.model_fields.items():
        alias = field.validation_alias or field.alias
        if isinstance(alias, AliasChoices):
            names.update(choice for choice in alias.choices if isinstance(choice, str))
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(name)
    return sorted(names)


def unknown_field_message(field: str, known: list[str]) -> str:
    """``unknown field 'global_concurency' (did you mean 'concurrency'?); known fields: ...``."""
    close = difflib.get_close_matches(field, known, n=1)
    guess = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown field {field!r}{guess}; known fields: {', '.join(known)}"


class StrictModel(BaseModel):
    """A declaration: unknown fields are errors whose message names the field and the known ones."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="wrap")
    @classmethod
    def _name_unknown_fields(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(data)
        except ValidationError as exc:
            raise _with_known_fields(cls, exc) from None


def _with_known_fields(model: type[BaseModel], exc: ValidationError) -> ValidationError:
    """The same errors, each unknown field of ``model`` itself explained; the others as they were."""
    known = known_fields(model)
    errors: list[Any] = []
    for err in exc.errors():
        msg = err["msg"]
        if err["type"] == "extra_forbidden" and len(err["loc"]) == 1:
            msg = unknown_field_message(str(err["loc"][0]), known)
        custom = PydanticCustomError(err["type"], "{message}", {"message": msg})
        errors.append({"type": custom, "loc": err["loc"], "input": err["input"]})
    return ValidationError.from_exception_data(exc.title, errors)
