"""How far one delivery of an agent step got, kept as JSON in the message that tries it again after
the run store went away mid-step (``tasks/outage.py``), so the next delivery goes on from there:

- ``{"begun": "maybe"}``: the statement that begins the try was sent and no answer came back; it
  may have counted the try. The next start takes over a try left without an entry instead of
  counting a lost one (:func:`orchestration.engine.agent_step.run_agent_step`).
- ``{"attempt", "tries", "errors"}``: try ``attempt`` began (``tries`` of the current budget, the
  failed and lost ``errors`` before it); the next delivery goes on with that try, uncounted.
- ``... "outcome": {"output", "at"}`` or ``{"error", "retryable", "hard_limit"?}``: the agent was
  called and this is what it did; the next delivery only writes it, and never calls the agent again.

A store retry is never a try: a try is counted once, when it begins.
"""

from __future__ import annotations

from typing import Any

from orchestration.store.states import StepStart


class StepProgress:
    """A view over the JSON dict the task keeps in its message; every change is made in that dict."""

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data: dict[str, Any] = data if data is not None else {}

    @property
    def maybe_begun(self) -> bool:
        return self.data.get("begun") == "maybe"

    def beginning(self) -> None:
        """The statement that begins the try is about to be sent."""
        self.data["begun"] = "maybe"

    def begun(self, start: StepStart, errors: list[dict[str, Any]]) -> None:
        """The try began: ``start`` as counted, ``errors`` the failed and lost tries before it."""
        self.data.pop("begun", None)
        self.data.update(attempt=start.attempts, tries=start.tries, errors=errors)

    def start(self) -> StepStart | None:
        """The try that began, when one did (as counted when it began); None otherwise."""
        attempt = self.data.get("attempt")
        if not isinstance(attempt, int):
            return None
        tries = int(self.data.get("tries") or attempt)
        errors = [e for e in self.data.get("errors") or [] if isinstance(e, dict)]
        return StepStart("running", attempt, None, errors, attempt - tries)

    @property
    def outcome(self) -> dict[str, Any] | None:
        found = self.data.get("outcome")
        return found if isinstance(found, dict) and self.start() is not None else None

    def forget_try(self) -> None:
        """The delivery that had this progress may have died inside its agent (its worker went
        away): unless the agent's outcome is known, the next start counts a new try and finds that
        one lost, as for any lost try."""
        if self.outcome is None:
            self.data.clear()

    def called(self, outcome: dict[str, Any]) -> None:
        """The agent returned (``{"output", "at"}``) or raised (``{"error", "retryable", ...}``)."""
        self.data["outcome"] = outcome
