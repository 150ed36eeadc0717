"""The sweeper: no run stays live forever.

Run periodically (``campaignflow.engine.sweep`` on beat). It fails live runs past their deadline,
and re-drives live runs with no progress for ``stall_seconds`` (a message lost with a crashed broker,
a worker gone, an inline caller that died) by publishing their canvas again: succeeded steps return
their stored output, so only what was lost runs. After ``max_redrives`` it fails them with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestration.engine.compiler import OrchestrationEngine
from orchestration.flows import Flow
from orchestration.names import LIVE_RUN_STATUSES, SWEEPER_HEARTBEAT
from orchestration.step_error import StepError
from orchestration.store import get_engine
from orchestration.store import repository as repo
from orchestration.store.control_models import Heartbeat

heartbeat_t: sa.Table = Heartbeat.__table__  # type: ignore[assignment]


@dataclass
class SweepReport:
    redriven: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    past_deadline: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {"redriven": self.redriven, "failed": self.failed, "past_deadline": self.past_deadline}


def _stalled(conn: Connection, before: datetime, limit: int) -> list[Any]:
    """Live runs whose last write (run or any step) is older than ``before``."""
    last_step = (
        sa.select(repo.step_t.c.run_id, sa.func.max(repo.step_t.c.updated_at).label("at"))
        .group_by(repo.step_t.c.run_id)
        .subquery()
    )
    progress = sa.func.coalesce(last_step.c.at, repo.run_t.c.updated_at)
    query = (
        sa.select(repo.run_t.c.run_id, repo.run_t.c.redrives, repo.run_t.c.flow_def)
        .select_from(repo.run_t.outerjoin(last_step, last_step.c.run_id == repo.run_t.c.run_id))
        .where(
            repo.run_t.c.status.in_(LIVE_RUN_STATUSES), repo.run_t.c.updated_at < before, progress < before
        )
        .order_by(repo.run_t.c.updated_at)
        .limit(limit)
    )
    return list(conn.execute(query))


def sweep(
    engine: OrchestrationEngine,
    *,
    stall_seconds: float,
    max_redrives: int,
    now: datetime | None = None,
    limit: int = 500,
) -> SweepReport:
    now = now or datetime.now(UTC)
    report = SweepReport()
    with get_engine().begin() as conn:
        late = conn.execute(
            sa.select(repo.run_t.c.run_id).where(
                repo.run_t.c.status.in_(LIVE_RUN_STATUSES), repo.run_t.c.deadline_at < now
            )
        ).scalars()
        for run_id in list(late):
            err = StepError.deadline_exceeded(found_by="the sweeper").as_dict()
            repo.fail_unfinished_steps(conn, run_id, err)
            if repo.finish_run(conn, run_id, "failed", err):
                report.past_deadline.append(run_id)
    with get_engine().begin() as conn:
        stalled = _stalled(conn, now - timedelta(seconds=stall_seconds), limit)
        to_start: list[tuple[str, Flow]] = []
        for row in stalled:
            if row.redrives >= max_redrives:
                err = StepError.stalled(stall_seconds, row.redrives).as_dict()
                repo.fail_unfinished_steps(conn, row.run_id, err)
                repo.finish_run(conn, row.run_id, "failed", err)
                report.failed.append(row.run_id)
                continue
            conn.execute(
                repo.run_t.update()
                .where(repo.run_t.c.run_id == row.run_id)
                .values(redrives=repo.run_t.c.redrives + 1, updated_at=now, mode="async")
            )
            to_start.append((row.run_id, Flow.model_validate(row.flow_def)))
        _beat(conn, SWEEPER_HEARTBEAT, now, report.as_dict())
    for run_id, flow in to_start:  # publish after commit: a crash in between is found next time
        engine.start(flow, run_id)
        report.redriven.append(run_id)
    return report


def _beat(conn: Connection, name: str, now: datetime, detail: dict[str, Any]) -> None:
    stmt = repo._insert(conn, heartbeat_t).values(name=name, beat_at=now, detail=detail)
    conn.execute(stmt.on_conflict_do_update(index_elements=["name"], set_={"beat_at": now, "detail": detail}))
