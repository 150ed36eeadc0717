"""Public entry points, stable names on the ``orchestration`` queue, callable with ``send_task`` by a
service that has only ``celery`` installed. Arguments and results are plain JSON."""

from __future__ import annotations

from typing import Any

from orchestration import control
from orchestration.app import app, engine
from orchestration.campaigns import manager

PUBLIC_TASKS = ("campaignflow.ingest_event", "campaignflow.cancel_run", "campaignflow.retry_run")


@app.task(name="campaignflow.ingest_event", acks_late=True)
def ingest_event(event: dict[str, Any]) -> dict[str, Any]:
    """``event``: ``{"id", "type", "payload", "campaign"?}`` -> ``{"run_id", "status", "duplicate"}``."""
    return manager().ingest_event(event, mode="async").as_dict()


@app.task(name="campaignflow.cancel_run", acks_late=True)
def cancel_run(run_id: str) -> dict[str, Any]:
    return {"run_id": run_id, "status": control.cancel_run(run_id)}


@app.task(name="campaignflow.retry_run", acks_late=True)
def retry_run(run_id: str) -> dict[str, Any]:
    """Re-drive a failed run: succeeded steps return their stored output, the failed one runs again."""
    flow = control.reopen_failed_run(run_id)
    engine().start(flow, run_id)
    return {"run_id": run_id, "status": "running"}
