"""campaignflow: multi-step agent workflows on Celery.

The import package ``orchestration`` holds the engine, the flow language, the run store and the
control plane. Agents live in ``agents`` (plain Python) and their Celery binding in ``tasks``.

The names below are the Python API (``from orchestration import Flow, CampaignManager``); the list
is pinned by ``tests/test_public_surface.py``. They load lazily (PEP 562): importing
``orchestration``, or any of its modules, imports nothing else, so it stays cheap and cannot build
an import cycle. A name's module is imported the first time the name is read.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [  # noqa: RUF022  (grouped by topic as the docs list them; sorted within a group)
    # Wiring
    "Runtime",
    # Engine
    "OrchestrationEngine",
    # Control plane
    "CampaignManager",
    "CampaignSpec",
    "Event",
    "Route",
    # Orchestrators
    "BaseOrchestrator",
    "FlowRunner",
    "RunHandle",
    # Flows
    "Flow",
    "FlowCatalog",
    "RetryPolicy",
    "load_flow",
    "parse_flow",
    # Registry
    "AgentSpec",
    "Registry",
    # Envelope
    "Envelope",
    "RunMetadata",
    "StepRecord",
    # Settings
    "Settings",
    "get_settings",
    # Errors
    "AlreadyReplayedError",
    "ApiError",
    "CampaignExistsError",
    "CampaignNotFoundError",
    "CampaignflowError",
    "ConfigurationError",
    "DeadLetterNotFoundError",
    "EventRejectedError",
    "EventValidationError",
    "FieldError",
    "FlowValidationError",
    "IncompleteBodyError",
    "NotReplayableError",
    "RefSyntaxError",
    "RejectedNotFoundError",
    "RouteNotFoundError",
    "RunNotFoundError",
    "RunStateError",
    "StepFailedError",
    "StoreUnavailable",
    "SuppressionNotFoundError",
    "Throttled",
    "TimingError",
    "UnknownAgentError",
    "UnknownFlowError",
    "UnknownNameError",
    "UnknownOrchestratorError",
    # Client
    "CampaignflowClient",
]

#: Each public name and the module that defines it.
_EXPORTS: dict[str, str] = {
    "Runtime": "orchestration.runtime",
    "OrchestrationEngine": "orchestration.engine.compiler",
    "CampaignManager": "orchestration.control.manager",
    "CampaignSpec": "orchestration.control.campaigns",
    "Event": "orchestration.control.manager",
    "Route": "orchestration.control.manager",
    "BaseOrchestrator": "orchestration.orchestrators.base",
    "FlowRunner": "orchestration.orchestrators.base",
    "RunHandle": "orchestration.orchestrators.base",
    "Flow": "orchestration.flows.model",
    "FlowCatalog": "orchestration.flows.loader",
    "RetryPolicy": "orchestration.flows.retry",
    "load_flow": "orchestration.flows.loader",
    "parse_flow": "orchestration.flows.validate",
    "AgentSpec": "orchestration.registry",
    "Registry": "orchestration.registry",
    "Envelope": "orchestration.envelope",
    "RunMetadata": "orchestration.envelope",
    "StepRecord": "orchestration.envelope",
    "Settings": "orchestration.settings",
    "get_settings": "orchestration.settings",
    "AlreadyReplayedError": "orchestration.control.rejected",
    "ApiError": "orchestration.api.errors",
    "CampaignExistsError": "orchestration.control.campaigns",
    "CampaignNotFoundError": "orchestration.control.campaigns",
    "RefSyntaxError": "orchestration.flows.refs",
    "CampaignflowError": "orchestration.errors",
    "ConfigurationError": "orchestration.errors",
    "DeadLetterNotFoundError": "orchestration.control.deadletters",
    "EventRejectedError": "orchestration.control.rejected",
    "IncompleteBodyError": "orchestration.control.rejected",
    "RejectedNotFoundError": "orchestration.control.rejected",
    "NotReplayableError": "orchestration.control.deadletters",
    "EventValidationError": "orchestration.errors",
    "FieldError": "orchestration.errors",
    "FlowValidationError": "orchestration.errors",
    "RouteNotFoundError": "orchestration.errors",
    "RunNotFoundError": "orchestration.errors",
    "RunStateError": "orchestration.control.run_control",
    "StepFailedError": "orchestration.errors",
    "StoreUnavailable": "orchestration.errors",
    "SuppressionNotFoundError": "orchestration.control.suppression",
    "Throttled": "orchestration.engine.permits.gate",
    "TimingError": "orchestration.flows.timing",
    "UnknownAgentError": "orchestration.errors",
    "UnknownFlowError": "orchestration.errors",
    "UnknownNameError": "orchestration.errors",
    "UnknownOrchestratorError": "orchestration.errors",
    "CampaignflowClient": "orchestration.client",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later reads skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:
    from orchestration.api.errors import ApiError
    from orchestration.client import CampaignflowClient
    from orchestration.control.campaigns import CampaignExistsError, CampaignNotFoundError, CampaignSpec
    from orchestration.control.deadletters import DeadLetterNotFoundError, NotReplayableError
    from orchestration.control.manager import CampaignManager, Event, Route
    from orchestration.control.rejected import (
        AlreadyReplayedError,
        EventRejectedError,
        IncompleteBodyError,
        RejectedNotFoundError,
    )
    from orchestration.control.run_control import RunStateError
    from orchestration.control.suppression import SuppressionNotFoundError
    from orchestration.engine.compiler import OrchestrationEngine
    from orchestration.engine.permits.gate import Throttled
    from orchestration.envelope import Envelope, RunMetadata, StepRecord
    from orchestration.errors import (
        CampaignflowError,
        ConfigurationError,
        EventValidationError,
        FieldError,
        FlowValidationError,
        RouteNotFoundError,
        RunNotFoundError,
        StepFailedError,
        StoreUnavailable,
        UnknownAgentError,
        UnknownFlowError,
        UnknownNameError,
        UnknownOrchestratorError,
    )
    from orchestration.flows.loader import FlowCatalog, load_flow
    from orchestration.flows.model import Flow
    from orchestration.flows.refs import RefSyntaxError
    from orchestration.flows.retry import RetryPolicy
    from orchestration.flows.timing import TimingError
    from orchestration.flows.validate import parse_flow
    from orchestration.orchestrators.base import BaseOrchestrator, FlowRunner, RunHandle
    from orchestration.registry import AgentSpec, Registry
    from orchestration.runtime import Runtime
    from orchestration.settings import Settings, get_settings
