"""Lead handling: enrich, score, then hot leads to the CRM and a message, the others to the CRM and the
nurture list (flows/lead_handling.yaml)."""

from __future__ import annotations

from typing import Any, ClassVar

from orchestration.flows import Flow
from orchestration.orchestrators.base import BaseOrchestrator


class LeadHandlingOrchestrator(BaseOrchestrator):
    name: ClassVar[str] = "lead_handling"
    description: ClassVar[str] = "enrich -> score -> hot: CRM + message | else: CRM + nurture list"

    def flow(self, payload: dict[str, Any]) -> Flow:
        return self.flows.get("lead_handling")
