"""Ending a run whose task gave up waiting for the run store (``CAMPAIGNFLOW_STORE_OUTAGE_SECONDS``
spent): the run fails with a ``StoreUnavailable`` error naming the step that waited."""

from __future__ import annotations

from typing import Any

from orchestration.names import LIVE_RUN_STATUSES
from orchestration.step_error import StepError
from orchestration.store import repository as repo
from orchestration.store import sql_engine
from orchestration.timefmt import as_utc


def fail_unavailable(
    run_id: str, step_id: str | None, error: StepError, *, outcome: dict[str, Any] | None = None
) -> bool:
    """End the run ``failed`` with ``error``, its unfinished records with it; False when it had
    already ended. ``outcome``: what the step's agent did before the store went away; an output is
    kept on its record (the agent's side effect happened), never hidden."""
    with sql_engine().begin() as conn:
        if repo.run_status(conn, run_id) not in LIVE_RUN_STATUSES:
            return False
        if step_id is not None and outcome is not None and "output" in outcome:
            at = as_utc(outcome["at"]) if outcome.get("at") else None
            repo.finish_step(conn, run_id, step_id, status="succeeded", output=outcome["output"], now=at)
        repo.fail_unfinished_steps(conn, run_id, error.as_dict())
        return repo.finish_run(conn, run_id, "failed", error.for_step(step_id).as_dict())
