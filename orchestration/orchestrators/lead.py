"""Lead handling: enrich a new lead, score it, write it to the CRM."""

from __future__ import annotations

from typing import Any, ClassVar

from orchestration.flows import Flow
from orchestration.orchestrators.base import BaseOrchestrator
from orchestration.orchestrators.catalog import flows


class LeadHandlingOrchestrator(BaseOrchestrator):
    name: ClassVar[str] = "lead_handling"
    description: ClassVar[str] = "enrich -> score -> CRM write"

    def flow(self, payload: dict[str, Any]) -> Flow:
        return flows().get("lead_handling")
