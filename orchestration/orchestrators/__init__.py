"""Orchestrators, found through the registry by name."""

from orchestration.orchestrators.base import BaseOrchestrator, RunHandle
from orchestration.orchestrators.lead import LeadHandlingOrchestrator
from orchestration.registry import registry

for _cls in (LeadHandlingOrchestrator,):
    if _cls.name not in registry.orchestrator_names():
        registry.add_orchestrator(_cls)

__all__ = ["BaseOrchestrator", "LeadHandlingOrchestrator", "RunHandle"]
