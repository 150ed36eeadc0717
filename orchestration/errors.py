"""The error tree. Every error campaignflow raises is a :class:`CampaignflowError`.

Agents do not import this module (they import nothing of ours); they raise their own
``agents.errors`` exceptions, which the engine classifies by their ``retryable`` attribute.
"""

from __future__ import annotations

from collections.abc import Iterable


class CampaignflowError(Exception):
    """Root of every campaignflow error: raised as such when no narrower error fits; catch it to
    handle anything campaignflow raises on purpose."""


class _Formatted(CampaignflowError):
    """An error built from fields: ``args`` keeps the fields (so Celery can rebuild it from a
    result), ``str()`` gives the message."""

    message: str

    def __str__(self) -> str:
        return self.message


class ConfigurationError(CampaignflowError):
    """Raised when settings or the registry are inconsistent."""


class UnknownNameError(_Formatted, LookupError):
    """Raised when a name (agent, orchestrator, flow) is not registered. Lists what is."""

    def __init__(
        self, kind: str, name: str, registered: Iterable[str] = (), *, path: str | None = None
    ) -> None:
        self.kind, self.name, self.registered = kind, name, sorted(registered)
        super().__init__(kind, name, self.registered)
        where = f"{path}: " if path else ""
        self.message = f"{where}unknown {kind} {name!r} (registered: {', '.join(self.registered) or 'none'})"


class UnknownAgentError(UnknownNameError):
    """Raised when a flow, the registry or a worker asks for an agent that is not registered."""

    def __init__(self, name: str, registered: Iterable[str] = (), *, path: str | None = None) -> None:
        super().__init__("agent", name, registered, path=path)
        self.args = (name, self.registered)


class UnknownOrchestratorError(UnknownNameError):
    """Raised when a route or a caller names an orchestrator that is not registered."""

    def __init__(self, name: str, registered: Iterable[str] = (), *, path: str | None = None) -> None:
        super().__init__("orchestrator", name, registered, path=path)
        self.args = (name, self.registered)


class UnknownFlowError(UnknownNameError):
    """Raised when a route or a caller names a flow that is not in the catalog."""

    def __init__(self, name: str, registered: Iterable[str] = (), *, path: str | None = None) -> None:
        super().__init__("flow", name, registered, path=path)
        self.args = (name, self.registered)


class FieldError(_Formatted, ValueError):
    """Raised when input has one or more field-level problems; each line is ``path: problem (fix)``."""

    def __init__(self, problems: list[str], *, subject: str = "input") -> None:
        self.problems = problems
        super().__init__(problems)
        self.message = f"invalid {subject}:\n  " + "\n  ".join(problems)


class FlowValidationError(FieldError):
    """Raised when a flow definition has a mistake (unknown field, bad reference, unknown agent...)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems, subject="flow")


class EventValidationError(FieldError):
    """Raised when an event does not have the required shape (``id``, ``type``, ``payload``...)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems, subject="event")


class RunNotFoundError(_Formatted, LookupError):
    """Raised when no run has the given ``run_id``."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(run_id)
        self.message = f"run {run_id!r} not found"


class StepFailedError(CampaignflowError):
    """Raised by a step task whose step failed for good; stops the chain (the run is already failed)."""


class RouteNotFoundError(CampaignflowError, LookupError):
    """Raised when no routing rule matches an event (its type, and its campaign if it has one)."""


class StoreUnavailable(_Formatted):
    """Raised when the run store stayed unreachable (connections refused or cut, the database
    starting up or shutting down) for longer than ``CAMPAIGNFLOW_STORE_OUTAGE_SECONDS``: a task gave
    up waiting. Its message says how long it waited and what the store last answered."""

    def __init__(self, waited: float, budget: float, reason: str) -> None:
        self.waited, self.budget, self.reason = waited, budget, reason
        super().__init__(waited, budget, reason)
        self.message = (
            f"run store unavailable for {waited:.0f}s, past the {budget:g}s budget "
            f"(CAMPAIGNFLOW_STORE_OUTAGE_SECONDS): {reason}"
        )
