"""Orchestrators, found through the registry by name."""

from orchestration.orchestrators.base import BaseOrchestrator, RunHandle
from orchestration.orchestrators.delivery import DeliveryOrchestrator
from orchestration.orchestrators.lead import LeadHandlingOrchestrator
from orchestration.registry import registry

for _cls in (LeadHandlingOrchestrator, DeliveryOrchestrator):
    if _cls.name not in registry.orchestrator_names():
        registry.add_orchestrator(_cls)

__all__ = ["BaseOrchestrator", "DeliveryOrchestrator", "LeadHandlingOrchestrator", "RunHandle"]
