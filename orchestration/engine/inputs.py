"""The input a step's record keeps: what its agent ran with, for the audit trail.

That is the agent's input model as JSON (references replaced by their values, the model's defaults
applied), or, when the resolved input does not fit the model, the resolved input as it was. A field
the model declares secret (pydantic's ``SecretStr``, ``SecretBytes`` or ``Secret[...]``, also inside
a nested model, a list or an optional) is kept as :data:`REDACTED`, never as its value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args, get_origin

from pydantic import BaseModel, Secret, SecretBytes, SecretStr, ValidationError

__all__ = ["REDACTED", "parse_input", "recorded_input"]

#: What a secret field's value is kept as (pydantic's own mask).
REDACTED = "**********"

_SECRET_TYPES = (SecretStr, SecretBytes, Secret)


def parse_input(model: type[BaseModel], raw: Any) -> tuple[Any, BaseModel | ValidationError]:
    """``raw`` (the resolved input) as the agent's input: ``(what the record keeps, the model's
    instance, or the error when it does not fit)``."""
    try:
        inp = model.model_validate(raw)
    except ValidationError as exc:
        return redact(model, raw), exc
    return recorded_input(inp, raw), inp


def recorded_input(inp: BaseModel, raw: Any) -> Any:
    """The validated input as JSON; pydantic writes secret fields as the mask. A model that cannot
    be written as JSON (a custom serializer that fails) is kept as its resolved input, redacted."""
    try:
        return inp.model_dump(mode="json")
    except (ValueError, TypeError):  # PydanticSerializationError is a ValueError
        return redact(type(inp), raw)


def redact(model: type[BaseModel], raw: Any) -> Any:
    """``raw`` (input that did not fit ``model``) with the values of ``model``'s secret fields masked."""
    if not isinstance(raw, Mapping):
        return raw
    kept = dict(raw)
    for name, field in model.model_fields.items():
        for key in {name, field.alias or name, field.validation_alias}:
            if isinstance(key, str) and key in kept:
                kept[key] = _redact_value(field.annotation, kept[key])
    return kept


def _redact_value(annotation: Any, value: Any) -> Any:
    if value is None:
        return None
    nested = _model(annotation)
    if nested is not None and isinstance(value, Mapping):
        return redact(nested, value)
    return REDACTED if _holds_secret(annotation) else value


def _model(annotation: Any) -> type[BaseModel] | None:
    """The model ``annotation`` is (``Model`` or ``Model | None``), if it is one."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    models = [a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    others = [a for a in get_args(annotation) if a is not type(None) and a not in models]
    return models[0] if len(models) == 1 and not others and get_origin(annotation) is not list else None


def _holds_secret(annotation: Any, depth: int = 0) -> bool:
    """Whether a value of ``annotation`` can hold a secret anywhere (then it is masked whole)."""
    if depth > 20:
        return False
    origin = get_origin(annotation) or annotation
    if isinstance(origin, type) and issubclass(origin, _SECRET_TYPES):
        return True
    if isinstance(origin, type) and issubclass(origin, BaseModel):
        return any(_holds_secret(f.annotation, depth + 1) for f in origin.model_fields.values())
    return any(_holds_secret(arg, depth + 1) for arg in get_args(annotation))
