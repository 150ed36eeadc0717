"""Cluster-wide limits as they are declared: on an agent (``AgentSpec``), on a step of a flow
(``limits:``), and by the ``CAMPAIGNFLOW_LIMITS`` setting.

- ``global_concurrency``: at most this many tries of the agent run at once across every worker.
- ``global_rate_limit``: at most this many tries start per second, minute or hour (Celery's syntax,
  ``"20/s"``, ``"100/m"``, ``"5/h"``), across every worker.
- ``limit_key``: the limits hold per value of this reference instead of once for the agent:
  ``$input.email|domain`` (a field of the step's resolved input, its domain), ``$payload.tenant``,
  ``$run.campaign``. The reference syntax of the flow language (``orchestration.flows.refs``) with
  one more root, ``input``, and filters after ``|``: ``domain`` (the part after ``@``, lower case)
  and ``lower``.

A more specific declaration wins field by field: the setting over the step over the agent.
No Celery, no Redis here: the engine holds the permits (``orchestration.engine.permits``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ConfigDict, Field, ValidationError, field_validator

from orchestration.flows.refs import ROOTS, RefSyntaxError, lookup
from orchestration.flows.strict import StrictModel

#: Celery's rate syntax: a number of tries per second, minute or hour.
RATE_PATTERN = r"^\d+(\.\d+)?/[smh]$"
_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0}
#: Roots a limit key may read: the flow's, and the step's resolved input.
KEY_ROOTS = ("input", *ROOTS)
#: The longest key value kept (a longer one is cut: keys name Redis keys).
MAX_KEY_LENGTH = 200


def _domain(value: str) -> str:
    return value.rpartition("@")[2].strip().lower()


#: Filters a limit key may apply to the value it reads: ``$input.email|domain``.
KEY_FILTERS: dict[str, Callable[[str], str]] = {"domain": _domain, "lower": str.lower}


def rate_interval(rate: str) -> float:
    """Seconds between two tries allowed by ``rate`` (``"20/s"`` -> 0.05)."""
    count, _, unit = rate.partition("/")
    value = float(count)
    if value <= 0:
        raise ValueError(f"{rate!r}: the count must be more than zero")
    return _PERIODS[unit] / value


@dataclass(frozen=True)
class KeyRef:
    """A parsed ``limit_key``: the path it reads and the filters applied in order."""

    path: str
    filters: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> KeyRef:
        if not text.startswith("$"):
            raise ValueError(f"{text!r} must be a $reference such as $input.email|domain or $payload.tenant")
        ref, *filters = text[1:].split("|")
        parts = ref.split(".")
        if not ref or any(not p for p in parts):
            raise ValueError(f"{text!r}: empty segment in the reference")
        if parts[0] not in KEY_ROOTS:
            raise ValueError(f"{text!r} must start with one of ${', $'.join(KEY_ROOTS)}")
        unknown = [f for f in filters if f.strip() not in KEY_FILTERS]
        if unknown:
            raise ValueError(f"{text!r}: unknown filter {unknown[0]!r} (known: {', '.join(KEY_FILTERS)})")
        return cls(ref, tuple(f.strip() for f in filters))

    def value(self, scope: Mapping[str, Any]) -> str:
        """The key's value in ``scope`` (``input`` plus the flow's roots); ``""`` when absent."""
        if self.path.split(".")[0] == "input":
            found = _input(scope, self.path)
        else:
            try:
                found = lookup(scope, self.path)
            except RefSyntaxError:
                found = None
        text = "" if found is None else str(found)
        for name in self.filters:
            text = KEY_FILTERS[name](text)
        return text[:MAX_KEY_LENGTH]


def _input(scope: Mapping[str, Any], path: str) -> Any:
    current: Any = scope.get("input")
    for part in path.split(".")[1:]:
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        else:
            return None
    return current


class LimitDecl(StrictModel):
    """One declaration of cluster-wide limits; unset fields leave the less specific one in place."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    global_concurrency: int | None = Field(
        None, ge=1, le=100_000, description="At most this many tries at once, across every worker."
    )
    global_rate_limit: str | None = Field(
        None, pattern=RATE_PATTERN, description='At most this many tries start per period: "20/s", "100/m".'
    )
    limit_key: str | None = Field(
        None, description="Hold the limits per value of this reference: $input.email|domain, $payload.tenant."
    )

    @field_validator("global_rate_limit")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        if value is not None:
            rate_interval(value)
        return value

    @field_validator("limit_key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        if value is not None:
            KeyRef.parse(value)
        return value

    def over(self, base: LimitDecl) -> LimitDecl:
        """These fields where set, ``base``'s elsewhere."""
        return base.model_copy(update=self.model_dump(exclude_none=True))

    @property
    def limited(self) -> bool:
        return self.global_concurrency is not None or self.global_rate_limit is not None


def parse_limits_setting(text: str) -> dict[str, LimitDecl]:
    """``CAMPAIGNFLOW_LIMITS``: a JSON object, agent name -> declaration. Raises ``ValueError``
    naming the agent and the field."""
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f'not JSON ({exc}); write {{"agent": {{"global_rate_limit": "20/s"}}}}') from None
    if not isinstance(data, dict):
        raise ValueError('expected a JSON object: {"agent": {"global_concurrency": 3}}')
    out: dict[str, LimitDecl] = {}
    for agent, decl in data.items():
        try:
            out[str(agent)] = LimitDecl.model_validate(decl)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "limits"
            raise ValueError(f"{agent}.{field}: {first['msg']}") from None
    return out


_NAME = re.compile(r"[^A-Za-z0-9_.@\-]")


def key_slug(value: str) -> str:
    """A key value as it goes into a Redis key name (no spaces or separators)."""
    return _NAME.sub("_", value)
