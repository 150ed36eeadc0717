"""What an agent may know about the step that calls it (a structural type: no import needed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class SendGuards(Protocol):
    """The promises a sender keeps, as the engine holds them for one step: the suppression list,
    the frequency caps, the backoff of receiving domains that defer, the unsubscribe headers."""

    def admit(self, recipient: str, *, marketing: bool, timezone: str | None = None) -> str | None:
        """Why this step must not send to ``recipient`` (suppressed, a cap reached), or None: it
        may, and a marketing message is counted against the caps (once per step)."""
        ...

    def release(self) -> None:
        """The message was not sent after all: its count under the caps is given back."""
        ...

    def suppress(self, recipient: str, reason: str, source: str, detail: str | None = None) -> bool:
        """Put ``recipient`` on the suppression list; False when it already was."""
        ...

    def bounced(self, recipient: str, reply: str) -> None:
        """A hard bounce: suppress the address."""
        ...

    def domain_wait(self, domain: str) -> float:
        """Seconds the receiving ``domain`` stays paused (0: send now)."""
        ...

    def deferred(self, domain: str, reply: str) -> float:
        """``domain`` deferred a message (SMTP 4xx): pause it longer; the pause in seconds."""
        ...

    def delivered(self, domain: str) -> None:
        """A message to ``domain`` went through: its backoff recovers a step."""
        ...

    def unsubscribe_headers(self, recipient: str) -> dict[str, str]:
        """``List-Unsubscribe`` and ``List-Unsubscribe-Post`` for a marketing message."""
        ...


class AgentContext(Protocol):
    @property
    def run_id(self) -> str: ...

    @property
    def step_id(self) -> str: ...

    @property
    def attempt(self) -> int: ...

    @property
    def idempotency_key(self) -> str:
        """``run_id:step_id``: the same on every try and redelivery of one step."""
        ...

    @property
    def config(self) -> Mapping[str, str | None]:
        """Service URLs the agent may use: database_url, smtp_url, llm_base_url, ..."""
        ...

    @property
    def guards(self) -> SendGuards:
        """The sending guards of this step."""
        ...
