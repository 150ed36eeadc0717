"""What the run repository reads for a step: the run's state and the outcome of beginning a step."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestration.names import DONE_STEP_STATUSES
from orchestration.store.base import aware


@dataclass
class RunState:
    """What a step needs to know about its run, read in one transaction."""

    run_id: str
    flow_name: str
    flow_version: str
    #: The run's flow snapshot; on Postgres its JSON text, which a step parses only when its
    #: process has not seen that exact text before (:func:`orchestration.engine.context.flow_of`).
    flow_def: dict[str, Any] | str
    status: str
    payload: dict[str, Any]
    campaign: str | None
    deadline_at: datetime | None
    outputs: dict[str, Any]
    statuses: dict[str, str]

    def scope(self) -> dict[str, Any]:
        meta = {"run_id": self.run_id, "flow": self.flow_name, "campaign": self.campaign}
        return {"payload": self.payload, "steps": self.outputs, "run": meta}


def run_state(run_id: str, row: Any) -> RunState:
    """A RunState from a row of the run's columns plus ``steps``: ``[[step_id, status, output], ...]``."""
    steps = [s for s in (row.steps or []) if s is not None]
    return RunState(
        run_id=run_id,
        flow_name=row.flow_name,
        flow_version=row.flow_version,
        flow_def=row.flow_def,
        status=row.status,
        payload=row.payload,
        campaign=row.campaign,
        deadline_at=aware(row.deadline_at),
        outputs={sid: output for sid, status, output in steps if status == "succeeded"},
        statuses={sid: status for sid, status, _output in steps},
    )


@dataclass(frozen=True)
class StepStart:
    status: str
    attempts: int
    output: Any
    attempt_errors: list[dict[str, Any]]
    #: Tries made before the current retry budget (see ``step_record.retry_base``).
    retry_base: int = 0
    #: The input the record holds (what the last try ran with), or None.
    input: Any = None

    @property
    def tries(self) -> int:
        """Tries in the current budget, this one included."""
        return self.attempts - self.retry_base

    @property
    def already_done(self) -> bool:
        return self.status in DONE_STEP_STATUSES
