"""The wired parts of a campaignflow process: one Celery app, one registry, one settings object, and
what is built from them (the OrchestrationEngine and the flow catalog).

:func:`orchestration.bootstrap.bootstrap` builds the runtime and installs it; the control plane, the
operations and the CLI read it through :func:`current`. Nothing here registers anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from celery import Celery

from orchestration.engine.compiler import OrchestrationEngine
from orchestration.errors import ConfigurationError
from orchestration.flows import FlowCatalog
from orchestration.orchestrators.catalog import flow_catalog
from orchestration.registry import Registry
from orchestration.settings import Settings


@dataclass(eq=False)
class Runtime:
    """One process's app, registry and settings, wired together by ``bootstrap``."""

    app: Celery
    registry: Registry
    settings: Settings
    bound_tasks: list[str] = field(default_factory=list)

    @cached_property
    def engine(self) -> OrchestrationEngine:
        """The OrchestrationEngine bound to this app and registry."""
        return OrchestrationEngine(self.app, self.registry)

    @cached_property
    def flows(self) -> FlowCatalog:
        """The built-in flows and those of ``CAMPAIGNFLOW_FLOWS_DIR``, checked against the registry."""
        return flow_catalog(self.registry, self.settings.flows_dir)


_current: Runtime | None = None


def install(runtime: Runtime | None) -> None:
    """Make ``runtime`` this process's runtime (``None`` forgets it)."""
    global _current
    _current = runtime


def installed() -> Runtime | None:
    return _current


def current() -> Runtime:
    """This process's runtime; a clear error when nothing bootstrapped it."""
    if _current is None:
        raise ConfigurationError(
            "campaignflow is not bootstrapped in this process; call orchestration.bootstrap.bootstrap() "
            "first (the worker, beat, the CLI and the test fixtures do)"
        )
    return _current
