"""Retry policies: how often a step is tried and how long to wait between tries."""

from __future__ import annotations

import random

from pydantic import ConfigDict, Field

from orchestration.flows.strict import StrictModel


class RetryPolicy(StrictModel):
    """How often a step is tried and how long to wait between tries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(3, ge=1, le=100, description="Tries in all, the first one included.")
    backoff_seconds: float = Field(1.0, ge=0, description="Delay before the second try.")
    backoff_factor: float = Field(2.0, ge=1, description="Each later delay is multiplied by this.")
    backoff_max_seconds: float = Field(60.0, ge=0, description="Cap on any single delay.")
    jitter: bool = Field(True, description="Randomise each delay between 50% and 100%.")
    non_retryable: tuple[str, ...] = Field((), description="Exception class names that fail at once.")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        base = min(
            self.backoff_seconds * self.backoff_factor ** max(attempt - 1, 0), self.backoff_max_seconds
        )
        return base * random.uniform(0.5, 1.0) if self.jitter else base
