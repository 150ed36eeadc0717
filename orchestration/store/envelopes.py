"""Reading runs back: the envelope of one run, and lists of runs."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestration.envelope import Envelope, RunMetadata, StepRecord
from orchestration.errors import RunNotFoundError
from orchestration.names import RunStatus
from orchestration.store import waits
from orchestration.store.base import aware, utcnow
from orchestration.store.tables import run_t, step_t


def get_envelope(conn: Connection, run_id: str) -> Envelope:
    run = conn.execute(sa.select(run_t).where(run_t.c.run_id == run_id)).first()
    if run is None:
        raise RunNotFoundError(run_id)
    steps = conn.execute(sa.select(step_t).where(step_t.c.run_id == run_id).order_by(step_t.c.id)).all()
    records = [
        StepRecord(
            step_id=s.step_id,
            agent=s.agent,
            status=s.status,
            attempts=s.attempts,
            started_at=aware(s.started_at),
            finished_at=aware(s.finished_at),
            input=s.input,
            output=s.output,
            error=s.error,
            attempt_errors=s.attempt_errors or [],
            note=s.note,
        )
        for s in steps
    ]
    meta = RunMetadata(
        event_id=run.event_id,
        campaign=run.campaign,
        orchestrator=run.orchestrator,
        flow_version=run.flow_version,
        mode=run.mode,
        created_at=aware(run.created_at),
        started_at=aware(run.started_at),
        finished_at=aware(run.finished_at),
        deadline_at=aware(run.deadline_at),
        redrives=run.redrives,
        error=run.error,
        payload=run.payload,
        extra=run.extra or {},
        wait=waits.current_wait(conn, run_id) if run.status == RunStatus.WAITING else None,
    )
    return Envelope(run_id=run.run_id, flow=run.flow_name, status=run.status, metadata=meta, records=records)


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    flow: str
    status: str
    campaign: str | None
    event_id: str | None
    created_at: datetime
    finished_at: datetime | None


#: The columns a :class:`RunSummary` is read from (select them, then :func:`summary` each row).
SUMMARY_COLUMNS = (
    run_t.c.run_id,
    run_t.c.flow_name,
    run_t.c.status,
    run_t.c.campaign,
    run_t.c.event_id,
    run_t.c.created_at,
    run_t.c.finished_at,
)


def summary(row: Any) -> RunSummary:
    """The summary of a run from a row of :data:`SUMMARY_COLUMNS`."""
    return RunSummary(
        row.run_id,
        row.flow_name,
        row.status,
        row.campaign,
        row.event_id,
        aware(row.created_at) or utcnow(),
        aware(row.finished_at),
    )


def list_runs(
    conn: Connection,
    *,
    status: str | None = None,
    flow: str | None = None,
    campaign: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
) -> list[RunSummary]:
    query = sa.select(*SUMMARY_COLUMNS).order_by(run_t.c.created_at.desc()).limit(limit)
    if status:
        query = query.where(run_t.c.status == status)
    if flow:
        query = query.where(run_t.c.flow_name == flow)
    if campaign:
        query = query.where(run_t.c.campaign == campaign)
    if since:
        query = query.where(run_t.c.created_at >= since)
    return [summary(r) for r in conn.execute(query)]
