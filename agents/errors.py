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
