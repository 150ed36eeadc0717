"""Errors an agent raises to tell the engine what to do. The engine reads ``retryable``."""

from __future__ import annotations


class AgentError(Exception):
    """Base of agent errors. ``retryable`` says whether another try may succeed."""

    retryable: bool = True


class TransientAgentError(AgentError):
    """A try failed for a reason that may pass (timeout, 429, 5xx, connection reset): retry it."""

    retryable = True


class PermanentAgentError(AgentError):
    """The input or the remote side rules out success: do not retry."""

    retryable = False
