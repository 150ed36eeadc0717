"""Celery signal receivers: the step context for logs and the step metrics, around every task.

Connected by ``orchestration.bootstrap`` (:func:`connect`). They act only on campaignflow's
own tasks (``campaignflow.*``) and never let a logging or metrics problem fail a task.
"""

from __future__ import annotations

import logging
import time
from contextlib import suppress
from contextvars import Token
from typing import Any

from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    celeryd_init,
    task_postrun,
    task_prerun,
    task_retry,
    worker_process_shutdown,
    worker_shutdown,
)

from orchestration.engine import logs
from orchestration.engine import step_metrics as steps
from orchestration.engine.permits import Throttled
from orchestration.names import AGENT_TASK_PREFIX, TASK_PREFIX
from orchestration.settings import get_settings

#: The logger of the one line every step writes when it ends (INFO).
step_log = logging.getLogger("campaignflow.steps")

_running: dict[str, tuple[float, Token[logs.StepFields | None], str | None]] = {}


def agent_of(task_name: str | None) -> str | None:
    """``campaignflow.agent.enrich`` -> ``enrich``; ``None`` for engine and public tasks."""
    if task_name and task_name.startswith(AGENT_TASK_PREFIX):
        return task_name[len(AGENT_TASK_PREFIX) :]
    return None


def _ours(task: Any) -> bool:
    return str(getattr(task, "name", "")).startswith(TASK_PREFIX)


def _step_started(
    task_id: str | None = None, task: Any = None, kwargs: dict[str, Any] | None = None, **_: Any
) -> None:
    if not task_id or not _ours(task):
        return
    kwargs = kwargs or {}
    agent = agent_of(task.name)
    fields = logs.StepFields(
        run_id=kwargs.get("run_id"),
        step_id=kwargs.get("step_id") or kwargs.get("node_id"),
        agent=agent,
        task_id=task_id,
    )
    _running[task_id] = (time.perf_counter(), logs.bind(fields), agent)


def _step_ended(
    task_id: str | None = None, task: Any = None, state: str | None = None, retval: Any = None, **_: Any
) -> None:
    started = _running.pop(task_id, None) if task_id else None
    if started is None:
        return
    begun, token, agent = started
    seconds = time.perf_counter() - begun
    try:
        if agent is not None and not throttled(retval):  # put back for a permit: no try
            steps.record_try(agent, state or "unknown", seconds)
            step_log.info("step try ended: %s in %.3fs", (state or "unknown").lower(), seconds)
    finally:
        with suppress(ValueError):  # postrun in another context than prerun: leave that context
            logs.unbind(token)


def throttled(value: Any) -> bool:
    """Whether a task's retry (or its result) is a step put back to wait for a permit: no try."""
    return isinstance(value, Throttled) or isinstance(getattr(value, "exc", None), Throttled)


def _step_retried(sender: Any = None, reason: Any = None, **_: Any) -> None:
    agent = agent_of(getattr(sender, "name", None))
    if agent is not None and not throttled(reason):
        steps.record_retry(agent)


def _flush_metrics(**_: Any) -> None:
    """A worker (or a prefork child) going away sends the step metrics it has not sent yet."""
    steps.flush()


def _root_logger(logger: logging.Logger | None = None, format: str | None = None, **_: Any) -> None:
    if logger is None:
        return
    json_lines = get_settings().log_json
    if logs.install(logger, json_lines=json_lines, fmt=format) and json_lines:
        logs.capture_warnings_as_json()


def _worker_init(**_: Any) -> None:
    """First thing a worker does: warnings it raises before its logging is set up (running as
    root, ...) must be JSON lines too when JSON is asked for."""
    if get_settings().log_json:
        logs.capture_warnings_as_json()


def _task_logger(logger: logging.Logger | None = None, **_: Any) -> None:
    if logger is not None:
        logs.install(logger, json_lines=get_settings().log_json)


_RECEIVERS: tuple[tuple[Any, Any], ...] = (
    (task_prerun, _step_started),
    (task_postrun, _step_ended),
    (task_retry, _step_retried),
    (worker_process_shutdown, _flush_metrics),
    (worker_shutdown, _flush_metrics),
    (after_setup_logger, _root_logger),
    (after_setup_task_logger, _task_logger),
    (celeryd_init, _worker_init),
)


def connect() -> None:
    """Connect every receiver (``bootstrap`` calls this; connecting twice changes nothing)."""
    for signal, receiver in _RECEIVERS:
        signal.connect(receiver, weak=False, dispatch_uid=f"campaignflow.{receiver.__name__}")
