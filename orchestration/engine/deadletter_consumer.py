"""The worker's consumer: Celery's own, plus a dead letter for every body it cannot decode.

Celery's ``Consumer.on_decode_error`` logs an undecodable message and acknowledges it, and sends
no signal, so this subclass records the message first (``orchestration.engine.deadletters``).
Celery imports it in worker processes only, from the app's ``worker_consumer`` setting, which
``bootstrap`` sets; other processes never load the worker's machinery.
"""

from __future__ import annotations

from typing import Any

from celery.worker.consumer import Consumer

from orchestration.engine.deadletters import capture


class DeadLetterConsumer(Consumer):  # type: ignore[misc]  # celery has no type hints
    """Celery's consumer; an undecodable message becomes a dead letter before it is acknowledged."""

    def on_decode_error(self, message: Any, exc: BaseException) -> None:
        capture(message, exc)
        super().on_decode_error(message, exc)
