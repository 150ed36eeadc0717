"""Delivery: render a template, send it through a channel, record the delivery.

A ``message.requested`` payload: ``to`` (recipient), ``template`` (a built-in template name) or
``subject`` + ``body`` (an inline template), optional ``vars`` (placeholder values) and ``channel``
(default ``email``). Each channel has its own flow and its own delivery agent, so each channel has its
own Celery rate limit; the send step writes the delivery ledger row (once per run step).
"""

from __future__ import annotations

from typing import Any, ClassVar

from orchestration.errors import FieldError
from orchestration.flows import Flow
from orchestration.orchestrators.base import BaseOrchestrator

#: channel -> flow name. A new channel is a new delivery agent (with its rate limit) and a flow.
CHANNEL_FLOWS: dict[str, str] = {"email": "delivery"}
DEFAULT_CHANNEL = "email"


class DeliveryOrchestrator(BaseOrchestrator):
    name: ClassVar[str] = "delivery"
    description: ClassVar[str] = "render template -> send through the channel -> delivery ledger"

    def flow(self, payload: dict[str, Any]) -> Flow:
        problems = self.payload_problems(payload)
        if problems:
            raise FieldError(problems, subject="payload")
        return self.flows.get(CHANNEL_FLOWS[payload.get("channel") or DEFAULT_CHANNEL])

    @staticmethod
    def payload_problems(payload: dict[str, Any]) -> list[str]:
        problems: list[str] = []
        channel = payload.get("channel") or DEFAULT_CHANNEL
        if channel not in CHANNEL_FLOWS:
            known = ", ".join(sorted(CHANNEL_FLOWS))
            problems.append(f"payload.channel: unknown channel {channel!r}; use one of {known}")
        inline = [f for f in ("subject", "body") if payload.get(f) is not None]
        if not payload.get("template") and len(inline) < 2:
            problems.append("payload.template: name a template, or give payload.subject and payload.body")
        if payload.get("template") and inline:
            problems.append("payload.template: give a template or subject and body, not both")
        if payload.get("vars") is not None and not isinstance(payload["vars"], dict):
            problems.append("payload.vars: must be an object of placeholder values")
        return problems
