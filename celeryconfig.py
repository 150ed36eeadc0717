"""Celery settings of campaignflow that do not depend on the environment or the registry.

The baseline is at-least-once delivery: acks late, prefetch 1, JSON only, retry on a lost worker.
The rest (broker, result backend, transport options, task events, queues, routes, beat's schedule)
is set by ``orchestration.bootstrap.configure_app`` from the settings and the registry.
"""

from orchestration.names import ENGINE_QUEUE

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
worker_soft_shutdown_timeout = 30.0
worker_hijack_root_logger = False
result_expires = 7 * 24 * 3600
timezone = "UTC"
enable_utc = True

task_default_queue = ENGINE_QUEUE
task_create_missing_queues = False
