"""The registry: agents (name -> handler, pool, limits, retry policy) and orchestrators (name -> class).

``orchestration`` never imports ``agents``; the Celery binding in ``tasks`` registers them here, and
``celeryconfig`` derives queues and routes from what is registered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from kombu.entity import Queue
from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestration.errors import ConfigurationError, UnknownAgentError, UnknownOrchestratorError
from orchestration.flows.limits import RATE_PATTERN, KeyRef, LimitDecl, rate_interval
from orchestration.flows.retry import RetryPolicy
from orchestration.flows.strict import StrictModel
from orchestration.names import AGENT_TASK_PREFIX, ENGINE_QUEUE, agent_queue, agent_task

if TYPE_CHECKING:
    from orchestration.orchestrators.base import BaseOrchestrator

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"


class AgentSpec(StrictModel):
    """Everything the engine and the workers need to know about one agent."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True, extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    handler: Callable[..., Any] = Field(exclude=True)
    input_model: type[BaseModel] = Field(exclude=True)
    output_model: type[BaseModel] = Field(exclude=True)
    pool: str = Field(pattern=NAME_PATTERN, description="Worker pool; its queue is agents.<pool>.")
    concurrency: int = Field(2, ge=1, le=256, description="Worker processes/threads for the pool.")
    rate_limit: str | None = Field(None, pattern=r"^\d+(\.\d+)?/[smh]$", description="Celery rate limit.")
    global_concurrency: int | None = Field(
        None, ge=1, le=100_000, description="At most this many tries at once across every worker (Redis)."
    )
    global_rate_limit: str | None = Field(
        None,
        pattern=RATE_PATTERN,
        description='At most this many tries start per period, cluster-wide: "20/s".',
    )
    limit_key: str | None = Field(
        None, description="Hold the global limits per value of this reference: $input.email|domain."
    )
    retry: RetryPolicy = RetryPolicy()
    soft_time_limit: float = Field(30.0, gt=0)
    time_limit: float = Field(60.0, gt=0)
    side_effects: bool = Field(False, description="Gets the run_id:step_id idempotency key.")
    description: str = ""

    @model_validator(mode="after")
    def _limits(self) -> AgentSpec:
        if self.soft_time_limit >= self.time_limit:
            raise ValueError(
                f"soft_time_limit ({self.soft_time_limit}) must be below time_limit ({self.time_limit})"
            )
        if self.global_rate_limit is not None:
            rate_interval(self.global_rate_limit)
        if self.limit_key is not None:
            KeyRef.parse(self.limit_key)
        return self

    @property
    def limits(self) -> LimitDecl:
        """The cluster-wide limits the agent declares (a step or the setting may override them)."""
        return LimitDecl(
            global_concurrency=self.global_concurrency,
            global_rate_limit=self.global_rate_limit,
            limit_key=self.limit_key,
        )

    @property
    def queue(self) -> str:
        return agent_queue(self.pool)

    @property
    def task_name(self) -> str:
        return agent_task(self.name)


class Registry:
    """Agents and orchestrators by name."""

    def __init__(self) -> None:
        self._agents: dict[str, AgentSpec] = {}
        self._orchestrators: dict[str, type[BaseOrchestrator]] = {}

    # agents
    def add_agent(self, spec: AgentSpec) -> AgentSpec:
        if spec.name in self._agents and self._agents[spec.name] is not spec:
            raise ConfigurationError(f"agent {spec.name!r} is already registered")
        self._agents[spec.name] = spec
        return spec

    def agent(self, name: str, *, path: str | None = None) -> AgentSpec:
        try:
            return self._agents[name]
        except KeyError:
            raise UnknownAgentError(name, self._agents, path=path) from None

    def agents(self) -> Iterator[AgentSpec]:
        return iter(sorted(self._agents.values(), key=lambda s: s.name))

    def agent_names(self) -> list[str]:
        return sorted(self._agents)

    def pools(self) -> dict[str, int]:
        """Pool name -> concurrency (the largest asked for by any of its agents)."""
        pools: dict[str, int] = {}
        for spec in self._agents.values():
            pools[spec.pool] = max(pools.get(spec.pool, 1), spec.concurrency)
        return dict(sorted(pools.items()))

    def queue_names(self) -> list[str]:
        return [ENGINE_QUEUE, *(agent_queue(pool) for pool in self.pools())]

    def queues(self) -> tuple[Queue, ...]:
        return tuple(Queue(name, routing_key=name) for name in self.queue_names())  # type: ignore[no-untyped-call]

    # orchestrators
    def add_orchestrator(self, cls: type[BaseOrchestrator]) -> type[BaseOrchestrator]:
        self._orchestrators[cls.name] = cls
        return cls

    def orchestrator(self, name: str, *, path: str | None = None) -> type[BaseOrchestrator]:
        try:
            return self._orchestrators[name]
        except KeyError:
            raise UnknownOrchestratorError(name, self._orchestrators, path=path) from None

    def orchestrator_names(self) -> list[str]:
        return sorted(self._orchestrators)

    # routing
    def route(
        self, name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any
    ) -> dict[str, str]:
        """Celery router: agent tasks to their pool's queue, everything else to ``orchestration``.

        A method rather than a static table, so agents registered by plugins route the same way.
        """
        if name.startswith(AGENT_TASK_PREFIX):
            spec = self._agents.get(name[len(AGENT_TASK_PREFIX) :])
            if spec is not None:
                return {"queue": spec.queue}
        return {"queue": ENGINE_QUEUE}
