"""Celery settings of campaignflow, read only from ``orchestration.settings`` (the environment).

The baseline is at-least-once delivery: acks late, prefetch 1, JSON only, retry on a lost worker,
events on. Queues and routes are generated from the registry: one ``agents.<pool>`` queue per pool
and ``orchestration`` for the engine's own tasks and Celery's built-ins.
"""

from __future__ import annotations

from typing import Any

import tasks.catalog  # noqa: F401  (registers the agents before queues are derived)
from orchestration.names import (
    CAMPAIGN_TICK_SCHEDULE_ENTRY,
    CAMPAIGN_TICK_TASK,
    ENGINE_QUEUE,
    SWEEP_SCHEDULE_ENTRY,
    SWEEP_TASK,
)
from orchestration.registry import registry, route_task
from orchestration.settings import get_settings

_settings = get_settings()

broker_url = _settings.effective_broker_url()
result_backend = _settings.effective_result_backend()

task_serializer = result_serializer = event_serializer = "json"
accept_content = result_accept_content = ["json"]
task_acks_late = True
worker_prefetch_multiplier = 1
task_retry_on_worker_lost = True
task_reject_on_worker_lost = False
worker_cancel_long_running_tasks_on_connection_loss = True
worker_deduplicate_successful_tasks = True
result_extended = True
# steps ignore their Celery results outside chord headers (the envelope has them); failures are
# still stored, for the run-failure errback to read
task_store_errors_even_if_ignored = True
broker_connection_retry_on_startup = True
task_allow_error_cb_on_chord_header = True
worker_send_task_events = True
task_send_sent_event = True
worker_soft_shutdown_timeout = 30.0
worker_hijack_root_logger = False
result_expires = 7 * 24 * 3600
timezone = "UTC"
enable_utc = True

task_default_queue = ENGINE_QUEUE
task_create_missing_queues = False
task_queues = registry.queues()
task_routes = (route_task,)

_transport: dict[str, Any] = {}
if _settings.embedded or broker_url.startswith(("memory://", "sqla+", "filesystem://")):
    _transport["polling_interval"] = 0.01
else:
    _transport["visibility_timeout"] = _settings.visibility_timeout
    visibility_timeout = _settings.visibility_timeout
    if _settings.unacked_restore_interval is not None:
        _transport["unacked_restore_interval"] = _settings.unacked_restore_interval
        _transport["unacked_restore_throttle"] = _settings.unacked_restore_interval
if _settings.redis_key_prefix:
    _transport["global_keyprefix"] = _settings.redis_key_prefix
broker_transport_options = _transport
result_backend_transport_options = {
    k: v for k, v in _transport.items() if k in ("visibility_timeout", "global_keyprefix")
}

beat_schedule = {
    SWEEP_SCHEDULE_ENTRY: {"task": SWEEP_TASK, "schedule": _settings.sweep_interval},
    CAMPAIGN_TICK_SCHEDULE_ENTRY: {"task": CAMPAIGN_TICK_TASK, "schedule": _settings.campaign_tick_interval},
}
