"""The sweeper: no run stays live forever.

Run periodically (``campaignflow.engine.sweep`` on beat). It fails live runs past their deadline,
and re-drives live runs with no progress for ``stall_seconds`` (a message lost with a crashed broker,
a worker gone, an inline caller that died) by publishing their canvas again, through the outbox like
any publication: succeeded steps return their stored output, so only what was lost runs. After
``max_redrives`` it fails them with a reason. A run whose publication still waits in the outbox is
not stalled: the relay publishes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from orchestration.engine.compiler import OrchestrationEngine
from orchestration.engine.publish import publish_now
from orchestration.flows import Flow
from orchestration.names import SWEEPER_HEARTBEAT
from orchestration.step_error import StepError
from orchestration.store import outbox, sql_engine, sweeps, waits
from orchestration.store import repository as repo
from orchestration.store.heartbeats import beat


@dataclass
class SweepReport:
    redriven: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    past_deadline: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {"redriven": self.redriven, "failed": self.failed, "past_deadline": self.past_deadline}


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
    with sql_engine().begin() as conn:
        for run_id in sweeps.runs_past_deadline(conn, now):
            err = StepError.deadline_exceeded(found_by="the sweeper").as_dict()
            repo.fail_unfinished_steps(conn, run_id, err)
            if repo.finish_run(conn, run_id, "failed", err):
                waits.close_run_waits(conn, run_id)  # a waiting run past its deadline waits no more
                report.past_deadline.append(run_id)
    with sql_engine().begin() as conn:
        stalled = sweeps.stalled_runs(conn, now - timedelta(seconds=stall_seconds), limit)
        to_start: list[tuple[outbox.Entry, Flow, datetime | None, int]] = []
        for row in stalled:
            if row.redrives >= max_redrives:
                err = StepError.stalled(stall_seconds, row.redrives).as_dict()
                repo.fail_unfinished_steps(conn, row.run_id, err)
                repo.finish_run(conn, row.run_id, "failed", err)
                report.failed.append(row.run_id)
                continue
            sweeps.count_redrive(conn, row.run_id, now)
            entry = outbox.next_publication(conn, row.run_id, outbox.REDRIVE)
            flow = Flow.model_validate(row.flow_def)
            to_start.append((entry, flow, repo.aware(row.deadline_at), int(row.priority or 0)))
        beat(conn, SWEEPER_HEARTBEAT, now, report.as_dict())
    # after the commit; what the broker refuses, the relay publishes
    for entry, flow, deadline_at, priority in to_start:
        publish_now(engine, entry, flow, deadline_at, priority)
        report.redriven.append(entry.run_id)
    return report
