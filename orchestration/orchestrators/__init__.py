"""Orchestrators, found through the registry by name (``bootstrap`` registers the built-in ones)."""

from orchestration.orchestrators.base import BaseOrchestrator, FlowRunner, Mode, RunHandle
from orchestration.orchestrators.delivery import DeliveryOrchestrator
from orchestration.orchestrators.lead import LeadHandlingOrchestrator

#: The orchestrators every process registers.
BUILTIN_ORCHESTRATORS = (LeadHandlingOrchestrator, DeliveryOrchestrator)

__all__ = [
    "BUILTIN_ORCHESTRATORS",
    "BaseOrchestrator",
    "DeliveryOrchestrator",
    "FlowRunner",
    "LeadHandlingOrchestrator",
    "Mode",
    "RunHandle",
]
