"""What a step tells its caller (a Celery task or the inline runner) about how to go on."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from orchestration.flows.model import StepNode
from orchestration.step_error import StepError


class Action(enum.Enum):
    CONTINUE = "continue"  # go on with the next step
    STOP = "stop"  # the run is terminal (cancelled, failed elsewhere, past its deadline): stop quietly
    FAILED = "failed"  # this step failed the run
    RETRY = "retry"  # try this step again after ``countdown`` seconds
    FALLBACK = "fallback"  # run ``fallback`` instead of this step
    PARK = "park"  # the run waits (a sleep, a wait): stop here; its wake-up publishes the rest


@dataclass(frozen=True)
class Outcome:
    action: Action
    countdown: float = 0.0
    fallback: StepNode | None = None
    error: StepError | None = None
