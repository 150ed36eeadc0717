"""Errors an agent raises to tell the engine what to do. The engine reads ``retryable``.

Agents import nothing of campaignflow, so these do not derive from ``orchestration.errors``'
``CampaignflowError``: ``AgentError`` is the root of the agents' own errors."""

from __future__ import annotations


class AgentError(Exception):
    """Raised by an agent whose try failed; the root of agent errors. ``retryable`` says whether
    another try may succeed (a subclass sets it, or an instance does)."""

    retryable: bool = True


class TransientAgentError(AgentError):
    """Raised when a try failed for a reason that may pass (timeout, 429, 5xx, connection reset):
    the engine retries the step under its retry policy."""

    retryable = True


class PermanentAgentError(AgentError):
    """Raised when the input or the remote side rules out success: the engine does not retry."""

    retryable = False


class DeferredAgentError(TransientAgentError):
    """Raised when the remote side asked to be tried later (an SMTP 4xx, a paused receiving
    domain): retried like any transient error, but not before ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = max(0.0, float(retry_after))


class SkipStep(AgentError):
    """Raised when the agent decided not to act, on purpose (a suppressed recipient, a frequency
    cap reached): the step is recorded ``skipped`` with the message as its note and ``output`` as
    its output, and the run goes on. Not a failure, so never retried."""

    retryable = False
    skip = True

    def __init__(self, note: str, output: dict[str, object] | None = None) -> None:
        super().__init__(note)
        self.note = note
        self.output = output
