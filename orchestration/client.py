"""A small client of campaignflow's public tasks for Python callers.

It sends the stable task names with ``send_task`` (it imports no task code), on the
``orchestration`` queue, with JSON arguments::

    from orchestration.client import CampaignflowClient

    client = CampaignflowClient(broker_url="redis://cache:6379/0", key_prefix="prod:")
    client.ingest_event({"id": "evt-1", "type": "lead.created", "payload": {"email": "a@b.co"}}, wait=True)
    # -> {"run_id": "...", "status": "queued", "duplicate": False}
    client.cancel_run(run_id)                                   # -> AsyncResult
    client.retry_run(run_id, payload_patch={"email": "fixed@b.co"}, wait=True)
    client.signal_run(run_id, "approval", {"by": "ana", "comment": "ok"}, signal_id="appr-1", wait=True)

Without ``wait`` a call returns the ``AsyncResult``; with ``wait=True`` it returns the result dict.
With no URLs the client uses this process's app (bootstrapped from the settings if need be).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, overload

from celery import Celery
from celery.result import AsyncResult

from orchestration.bootstrap import bootstrap
from orchestration.names import (
    CANCEL_RUN_TASK,
    ENGINE_QUEUE,
    INGEST_EVENT_TASK,
    RETRY_RUN_TASK,
    SIGNAL_RUN_TASK,
)


def remote_app(broker_url: str, result_backend: str | None = None, key_prefix: str | None = None) -> Celery:
    """A bare Celery app that can only send: JSON, the given URLs and the shared key prefix."""
    app = Celery("campaignflow-client", broker=broker_url, backend=result_backend or broker_url)
    options = {"global_keyprefix": key_prefix} if key_prefix else {}
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        broker_transport_options=options,
        result_backend_transport_options=options,
        task_send_sent_event=True,
    )
    return app


class CampaignflowClient:
    def __init__(
        self,
        app: Celery | None = None,
        *,
        broker_url: str | None = None,
        result_backend: str | None = None,
        key_prefix: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        if app is None and broker_url is not None:
            app = remote_app(broker_url, result_backend, key_prefix)
        if app is None:
            app = bootstrap().app
        self.app, self.timeout = app, timeout

    def send(self, name: str, kwargs: Mapping[str, Any]) -> AsyncResult:
        return self.app.send_task(name, kwargs=dict(kwargs), queue=ENGINE_QUEUE)

    @overload
    def _call(self, name: str, kwargs: Mapping[str, Any], wait: Literal[False]) -> AsyncResult: ...
    @overload
    def _call(self, name: str, kwargs: Mapping[str, Any], wait: bool) -> AsyncResult | dict[str, Any]: ...

    def _call(self, name: str, kwargs: Mapping[str, Any], wait: bool) -> AsyncResult | dict[str, Any]:
        result = self.send(name, kwargs)
        if not wait:
            return result
        value: dict[str, Any] = result.get(timeout=self.timeout)
        return value

    def ingest_event(self, event: Mapping[str, Any], *, wait: bool = False) -> AsyncResult | dict[str, Any]:
        """``{"id", "type", "payload", "campaign"?}`` -> ``{"run_id", "status", "duplicate"}``; a
        rejected event answers ``status: "rejected"`` with ``rejected_id`` and ``error``."""
        return self._call(INGEST_EVENT_TASK, {"event": dict(event)}, wait)

    def cancel_run(self, run_id: str, *, wait: bool = False) -> AsyncResult | dict[str, Any]:
        return self._call(CANCEL_RUN_TASK, {"run_id": run_id}, wait)

    def retry_run(
        self, run_id: str, *, payload_patch: Mapping[str, Any] | None = None, wait: bool = False
    ) -> AsyncResult | dict[str, Any]:
        kwargs: dict[str, Any] = {"run_id": run_id}
        if payload_patch:
            kwargs["payload_patch"] = dict(payload_patch)
        return self._call(RETRY_RUN_TASK, kwargs, wait)

    def signal_run(
        self,
        run_id: str,
        signal: str,
        data: Any = None,
        *,
        signal_id: str | None = None,
        wait: bool = False,
    ) -> AsyncResult | dict[str, Any]:
        """Resume the run's wait for ``signal`` with JSON ``data`` (kept until the wait starts);
        the same ``signal_id`` twice is one signal. -> ``{"run_id", "signal", "signal_id",
        "status", "duplicate", "resumed", "error"}``."""
        kwargs: dict[str, Any] = {"run_id": run_id, "signal": signal, "data": data}
        if signal_id is not None:
            kwargs["signal_id"] = signal_id
        return self._call(SIGNAL_RUN_TASK, kwargs, wait)
