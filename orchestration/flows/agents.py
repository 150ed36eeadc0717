"""What validation needs to know about agents, as structural types: the flow language does not
depend on the registry (the registry satisfies :class:`AgentLookup`)."""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel


class AgentInfo(Protocol):
    """The parts of an agent's declaration that a flow is checked against."""

    @property
    def name(self) -> str: ...
    @property
    def input_model(self) -> type[BaseModel]: ...
    @property
    def output_model(self) -> type[BaseModel]: ...
    @property
    def time_limit(self) -> float: ...
    @property
    def soft_time_limit(self) -> float: ...


class AgentLookup(Protocol):
    """Finds an agent by name; raises a ``LookupError`` naming the path when there is none."""

    def agent(self, name: str, *, path: str | None = None) -> AgentInfo: ...
