"""What a step tells its caller (a Celery task or the inline runner) about how to go on."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from orchestration.flows.model import StepNode


class Action(enum.Enum):
    CONTINUE = "continue"  # go on with the next step
    STOP = "stop"  # the run is terminal (cancelled, failed elsewhere, past its deadline): stop quietly
    FAILED = "failed"  # this step failed the run
    RETRY = "retry"  # try this step again after ``countdown`` seconds
    FALLBACK = "fallback"  # run ``fallback`` instead of this step


@dataclass(frozen=True)
class Outcome:
    action: Action
    countdown: float = 0.0
    fallback: StepNode | None = None
    error: dict[str, Any] | None = None
