"""The canonical envelope of a run: metadata plus one record per step. What ``runs show --json``
prints and what the store holds.

Every time in it is an aware UTC datetime (naive values, as SQLite returns them, are read as UTC) and
is written in JSON as ``2026-12-01T09:30:00.123456Z`` (:func:`orchestration.timefmt.iso_utc`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestration.names import TERMINAL_RUN_STATUSES, RunStatus, StepStatus
from orchestration.step_error import StepError
from orchestration.timefmt import UtcDatetime

__all__ = ["Envelope", "RunMetadata", "StepError", "StepRecord"]


class StepRecord(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    step_id: str
    agent: str | None
    status: StepStatus
    attempts: int
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
    input: Any = Field(
        None,
        description="What the agent ran with: its resolved input, secret fields redacted (agent steps only).",
    )
    output: Any = None
    error: StepError | None = None
    attempt_errors: list[StepError] = Field(default_factory=list)
    note: str | None = Field(
        None, description='What the status alone does not say: "finished after the run was cancelled".'
    )


class WaitInfo(BaseModel):
    """What a waiting run waits for: its ``sleep`` or ``wait`` node, the signal (a wait's), and
    until when (a sleep's wake-up, a wait's timeout; None: a wait with no timeout)."""

    node_id: str
    kind: str
    signal: str | None = None
    until: UtcDatetime | None = None


class RunMetadata(BaseModel):
    event_id: str | None = None
    campaign: str | None = None
    orchestrator: str | None = None
    flow_version: str
    mode: str
    created_at: UtcDatetime
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None
    deadline_at: UtcDatetime | None = None
    redrives: int = 0
    error: StepError | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict)
    #: Only while the run is ``waiting``.
    wait: WaitInfo | None = None


class Envelope(BaseModel):
    run_id: str
    flow: str
    status: RunStatus
    metadata: RunMetadata
    records: list[StepRecord]

    def record(self, step_id: str) -> StepRecord | None:
        return next((r for r in self.records if r.step_id == step_id), None)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_RUN_STATUSES
