"""Public entry points, stable names on the ``orchestration`` queue, callable with ``send_task`` by a
service that has only ``celery`` installed. Arguments and results are plain JSON.

- ``campaignflow.ingest_event(event)`` -> ``{"run_id", "status", "duplicate"}``; a rejected event is
  stored and answered with ``{"run_id": null, "status": "rejected", "rejected_id", "error", ...}``.
- ``campaignflow.cancel_run(run_id)`` -> ``{"run_id", "status", "error"}``.
- ``campaignflow.retry_run(run_id, payload_patch=None)`` -> ``{"run_id", "status", "error"}``.
- ``campaignflow.campaign_tick()`` -> what the tick did (beat sends it; calling it again is harmless).
- ``campaignflow.signal_run(run_id, signal, data=None, signal_id=None)`` -> ``{"run_id", "signal",
  "signal_id", "status", "duplicate", "resumed", "error"}``.

Expected problems (unknown run, wrong state) come back as ``error`` in the result, not as an
exception, so a caller never needs this project's exception classes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from celery import Task

from orchestration.control import rejected, run_control, signals
from orchestration.control.manager import manager
from orchestration.control.ticks import tick
from orchestration.errors import CampaignflowError, EventValidationError
from orchestration.names import PUBLIC_TASKS
from orchestration.runtime import Runtime
from orchestration.store import repository as repo
from orchestration.store import sql_engine
from tasks.outage import give_up_raising, waits_out_store_outages


def ingest_event(event: Any = None, **unexpected: Any) -> dict[str, Any]:
    """``event``: ``{"id", "type", "payload", "campaign"?, "occurred_at"?}``.

    Nothing is dropped: a missing or malformed event, or unexpected arguments, is stored as a
    rejected event and the result says so.
    """
    if unexpected:
        body = {"event": event, "unexpected_arguments": unexpected}
        problem = f"unexpected arguments {sorted(unexpected)}; send only kwargs={{'event': {{...}}}}"
        return _rejected(rejected.reject(body, EventValidationError([problem])))
    try:
        return manager().ingest_event(event, mode="async").as_dict()
    except rejected.EventRejectedError as exc:
        return _rejected(exc)


def _rejected(exc: rejected.EventRejectedError) -> dict[str, Any]:
    return {
        "run_id": None,
        "status": "rejected",
        "duplicate": False,
        "rejected_id": exc.rejected_id,
        "reason": exc.kind,
        "error": str(exc),
    }


def cancel_run(run_id: str) -> dict[str, Any]:
    """Cancel a queued or running run; a terminal run keeps its status."""
    try:
        return {"run_id": run_id, "status": run_control.cancel_run(run_id), "error": None}
    except CampaignflowError as exc:
        return {"run_id": run_id, "status": "not_found", "error": str(exc)}


def retry_run(run_id: str, payload_patch: dict[str, Any] | None = None) -> dict[str, Any]:
    """Re-drive a failed run: succeeded steps keep their stored output, the failed one runs again.

    ``payload_patch`` (JSON merge patch) corrects the stored payload first.
    """
    try:
        return {"run_id": run_id, "status": run_control.retry_run(run_id, payload_patch), "error": None}
    except CampaignflowError as exc:
        return {"run_id": run_id, "status": _status(run_id), "error": str(exc)}


def _status(run_id: str) -> str:
    try:
        with sql_engine().connect() as conn:
            return repo.run_status(conn, run_id)
    except CampaignflowError:
        return "not_found"


def signal_run(run_id: str, signal: str, data: Any = None, signal_id: str | None = None) -> dict[str, Any]:
    """Resume the run's wait for ``signal`` with ``data`` (or keep the signal until the wait
    starts); the same ``signal_id`` twice is one signal."""
    try:
        return signals.signal_run(run_id, signal, data, signal_id).as_dict()
    except CampaignflowError as exc:
        return {
            "run_id": run_id,
            "signal": signal,
            "signal_id": signal_id,
            "status": _status(run_id),
            "duplicate": False,
            "resumed": False,
            "error": str(exc),
        }


def campaign_tick() -> dict[str, Any]:
    """Start the due slots of every enabled campaign, once per (campaign, slot, audience member)."""
    return tick().as_dict()


def _bound(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` as the body of a bound task (it does not use the task itself)."""

    @functools.wraps(fn)
    def body(_task: Task, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return body


def bind(runtime: Runtime) -> list[str]:
    """Bind the public tasks to the runtime's app, under their stable names. Each waits a run store
    outage out; past the budget it fails with ``StoreUnavailable`` (:mod:`tasks.outage`)."""
    functions: tuple[Callable[..., Any], ...] = (
        ingest_event,
        cancel_run,
        retry_run,
        campaign_tick,
        signal_run,
    )
    return [
        runtime.app.task(name=name, bind=True, acks_late=True)(
            waits_out_store_outages(give_up_raising)(_bound(fn))
        ).name
        for name, fn in zip(PUBLIC_TASKS, functions, strict=True)
    ]
