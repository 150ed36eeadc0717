"""Run control: cancel a live run, retry a failed one from where it failed."""

from __future__ import annotations

import sqlalchemy as sa

from orchestration.errors import CampaignflowError
from orchestration.flows import Flow
from orchestration.store import get_engine
from orchestration.store import repository as repo


class RunStateError(CampaignflowError):
    """The run is not in a state that allows the operation."""


def cancel_run(run_id: str) -> str:
    """Mark a queued or running run ``cancelled``; its remaining steps see it and stop."""
    with get_engine().begin() as conn:
        if repo.finish_run(
            conn, run_id, "cancelled", {"type": "Cancelled", "message": "cancelled on request"}
        ):
            conn.execute(
                repo.step_t.update()
                .where(repo.step_t.c.run_id == run_id, repo.step_t.c.status == "pending")
                .values(status="skipped", finished_at=repo.utcnow())
            )
            return "cancelled"
        return repo.run_status(conn, run_id)


def reopen_failed_run(run_id: str) -> Flow:
    """Set a failed run back to ``running`` with its failed records pending; succeeded steps stay."""
    with get_engine().begin() as conn:
        status = repo.run_status(conn, run_id)
        if status != "failed":
            raise RunStateError(f"run {run_id} is {status}; only failed runs can be retried")
        conn.execute(
            repo.step_t.update()
            .where(repo.step_t.c.run_id == run_id, repo.step_t.c.status.in_(("failed", "running")))
            .values(status="pending", finished_at=None)
        )
        conn.execute(
            repo.run_t.update()
            .where(repo.run_t.c.run_id == run_id)
            .values(
                status="running",
                error=None,
                finished_at=None,
                redrives=repo.run_t.c.redrives + 1,
                updated_at=repo.utcnow(),
                deadline_at=None,
            )
        )
        flow_def = conn.execute(
            sa.select(repo.run_t.c.flow_def).where(repo.run_t.c.run_id == run_id)
        ).scalar_one()
    return Flow.model_validate(flow_def)
