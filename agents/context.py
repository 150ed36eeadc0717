"""What an agent may know about the step that calls it (a structural type: no import needed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class AgentContext(Protocol):
    @property
    def run_id(self) -> str: ...

    @property
    def step_id(self) -> str: ...

    @property
    def attempt(self) -> int: ...

    @property
    def idempotency_key(self) -> str:
        """``run_id:step_id``: the same on every try and redelivery of one step."""
        ...

    @property
    def config(self) -> Mapping[str, str | None]:
        """Service URLs the agent may use: database_url, smtp_url, llm_base_url, ..."""
        ...
