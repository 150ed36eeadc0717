"""Run control: cancel a live run, retry a failed one from where it failed.

Cancelling marks the run ``cancelled`` and closes every record still open (``skipped``: pending
and running steps, a map that had not joined) in one transaction. Its queued messages are not
revoked one by one: every step task reads the run first (``engine.context.gate_run``) and stops
without calling its agent when the run is terminal, so a cancelled run runs no further step. A step
already inside its agent finishes that call; its outcome is recorded as what it was, with the note
"finished after the run was cancelled" (its side effect happened: it is never hidden), and the run
stays ``cancelled`` (a terminal status is never replaced).

Retrying a failed run re-drives it from where it failed, with a fresh deadline (the flow's,
counted from the retry) and a fresh budget of tries for every step it retries.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from orchestration.engine.publish import publish_now
from orchestration.errors import CampaignflowError, FieldError, RunNotFoundError
from orchestration.flows import Flow
from orchestration.orchestrators.base import deadline_from
from orchestration.runtime import current
from orchestration.step_error import StepError
from orchestration.store import outbox, sql_engine, waits
from orchestration.store import repository as repo


class RunStateError(CampaignflowError):
    """Raised when the run is not in a state that allows the operation (retrying a run that did not fail)."""


def cancel_run(run_id: str) -> str:
    """Mark a queued, running or waiting run ``cancelled`` and close its open records (and a waiting
    run's waits and timers); its remaining steps see it and stop.

    Returns the run's status afterwards (``cancelled``, or the terminal status it already had).
    """
    with sql_engine().begin() as conn:
        if repo.finish_run(conn, run_id, "cancelled", StepError.cancelled().as_dict()):
            repo.close_open_steps(conn, run_id, StepError.cancelled_open().as_dict())
            waits.close_run_waits(conn, run_id)
            return "cancelled"
        return repo.run_status(conn, run_id)


def merge_patch(target: Any, patch: Any) -> Any:
    """JSON Merge Patch (RFC 7396): objects merge key by key, ``null`` removes a key."""
    if not isinstance(patch, Mapping):
        return patch
    merged = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def reopen_failed_run(
    run_id: str, payload_patch: Mapping[str, Any] | None = None
) -> tuple[Flow, datetime | None, outbox.Entry, int]:
    """Set a failed run back to ``running`` with its failed records pending, each with a fresh
    budget of tries; succeeded steps stay. The run gets the flow's deadline again, counted from now,
    and its next publication's outbox row, in the same transaction. Returns the flow, the new
    deadline, that outbox entry (to publish after the commit) and the run's priority.

    ``payload_patch`` (a JSON merge patch) corrects the stored payload before the re-drive.
    """
    with sql_engine().begin() as conn:
        row = repo.lock_run(conn, run_id)
        if row is None:
            raise RunNotFoundError(run_id)
        if row.status != "failed":
            raise RunStateError(f"run {run_id} is {row.status}; only failed runs can be retried")
        flow = Flow.model_validate(row.flow_def)
        payload: dict[str, Any] | None = None
        if payload_patch:
            payload = merge_patch(row.payload, payload_patch)
            _check_payload(flow, payload)
        deadline_at = deadline_from(flow, datetime.now(UTC))
        repo.reopen_run(conn, run_id, payload, deadline_at=deadline_at)
        entry = outbox.next_publication(conn, run_id, outbox.RETRY)
    return flow, deadline_at, entry, int(row.priority or 0)


def _check_payload(flow: Flow, payload: dict[str, Any]) -> None:
    missing = [f for f in flow.input_required if payload.get(f) in (None, "")]
    if missing:
        raise FieldError(
            [f"payload.{f}: required by flow {flow.name!r}; the patch must not remove it" for f in missing],
            subject="payload patch",
        )


def retry_run(run_id: str, payload_patch: Mapping[str, Any] | None = None) -> str:
    """Re-drive a failed run on the workers from its failed step; returns ``running`` (also when the
    broker cannot take it yet: the outbox relay publishes it then)."""
    flow, deadline_at, entry, priority = reopen_failed_run(run_id, payload_patch)
    publish_now(current().engine, entry, flow, deadline_at, priority)
    return "running"
