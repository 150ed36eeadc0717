"""Poison messages go to the dead-letter store instead of only into the worker's log.

Celery 5.7's worker consumer takes a message off a queue and, when it cannot make a task of it,
logs it and drops it (``celery/worker/consumer/consumer.py``):

- ``on_invalid_task``: the content type is refused (pickle: ``accept_content`` is JSON only) or the
  message breaks the task protocol; it sends the ``task_rejected`` signal;
- ``on_unknown_message``: no ``task`` header (not a task message); also ``task_rejected``;
- ``on_unknown_task``: no task of that name is registered; it sends ``task_unknown``;
- ``on_decode_error``: the body does not decode (corrupt JSON, bytes that are not UTF-8, a body
  nested too deeply for the JSON decoder); it sends no signal, so the worker's consumer class is
  :class:`orchestration.engine.deadletter_consumer.DeadLetterConsumer`, which records it first.

``bootstrap`` connects the two signals (:func:`connect`) and names that consumer class in the
app's configuration (:data:`CONSUMER`). Recording never raises into the consumer: a dead letter
that cannot be stored is logged with the message's details, and the worker goes on.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from celery.exceptions import InvalidTaskError
from celery.signals import task_rejected, task_unknown
from kombu.exceptions import ContentDisallowed, DecodeError

from orchestration.store import deadletters as store
from orchestration.store import sql_engine
from orchestration.store.jsontext import escape, store_json

log = logging.getLogger(__name__)

#: The worker's consumer class (``worker_consumer``), imported by Celery in worker processes only.
CONSUMER = "orchestration.engine.deadletter_consumer:DeadLetterConsumer"
#: Longest body kept, in bytes; a longer one is kept cut (and cannot be replayed).
BODY_CAP = 1_048_576

#: Every reason a dead letter can have (the metric reports each, zero included).
REASONS = (
    "refused_content",
    "bad_json",
    "not_utf8",
    "too_deep",
    "undecodable",
    "unknown_task",
    "invalid_task",
    "not_a_task",
)


def classify(exc: BaseException | None, task: str | None) -> tuple[str, str]:
    """``(reason, detail)`` of a message the worker could not process; the detail says the fix."""
    if isinstance(exc, ContentDisallowed):
        return "refused_content", f"{exc}; workers accept JSON only: publish with serializer='json'"
    if isinstance(exc, DecodeError):
        cause = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else exc.__cause__
        if isinstance(cause, UnicodeError):
            return "not_utf8", f"body is not UTF-8 text ({cause}); publish UTF-8 JSON"
        if isinstance(cause, RecursionError):
            return "too_deep", f"body nested too deeply to decode ({cause}); flatten the message"
        if isinstance(cause, ValueError):
            return "bad_json", f"body is not valid JSON ({cause}); publish it with a JSON serializer"
        return "undecodable", f"body cannot be decoded ({exc})"
    if task is not None and isinstance(exc, KeyError):
        return "unknown_task", (
            f"no task named {task!r} is registered on this worker; deploy the code that defines it "
            "(CAMPAIGNFLOW_PLUGINS), then `campaignflow deadletters replay ID`"
        )
    if isinstance(exc, InvalidTaskError):
        return "invalid_task", f"{exc}; publish with Celery's task protocol 2 (send_task)"
    return "not_a_task", "message has no 'task' header: not a Celery task message; publish it with send_task"


def _body_bytes(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    return str(body if body is not None else "").encode("utf-8", "surrogatepass")


def dead_letter(message: Any, exc: BaseException | None) -> dict[str, Any]:
    """The row of a dead letter: where it came from, what it held, why it could not be processed."""
    info = getattr(message, "delivery_info", None) or {}
    raw_headers = getattr(message, "headers", None)
    headers = raw_headers if isinstance(raw_headers, dict) else {}
    task = headers.get("task")
    task = task if isinstance(task, str) else None
    queue = escape(str(info.get("routing_key") or info.get("exchange") or "?"))[:200]
    reason, detail = classify(exc, task)
    body = _body_bytes(getattr(message, "body", b""))
    content_type = getattr(message, "content_type", None)
    content_encoding = getattr(message, "content_encoding", None)
    headers_text = store_json(headers).text
    fingerprint = hashlib.sha256()
    for part in (queue, str(content_type), str(content_encoding), headers_text):
        fingerprint.update(part.encode("utf-8") + b"\x00")
    fingerprint.update(body)
    return {
        "fingerprint": fingerprint.hexdigest(),
        "queue": queue,
        "task": None if task is None else escape(task)[:200],
        "reason": reason,
        "detail": escape(detail)[:4000],
        "headers": headers_text,
        "content_type": None if content_type is None else escape(str(content_type))[:200],
        "content_encoding": None if content_encoding is None else escape(str(content_encoding))[:80],
        "body": body[:BODY_CAP],
        "body_size": len(body),
    }


def capture(message: Any, exc: BaseException | None) -> int | None:
    """Keep ``message`` as a dead letter; its row id, or None when it could not be stored."""
    try:
        values = dead_letter(message, exc)
        with sql_engine().begin() as conn:
            row_id = store.record(conn, values)
    except Exception:  # the consumer must go on; the worker's own log line keeps the message
        log.exception("dead letter not stored (message %r)", getattr(message, "headers", None))
        return None
    log.warning(
        "dead letter %s: %s on queue %s (task %s); see `campaignflow deadletters show %s`",
        row_id,
        values["reason"],
        values["queue"],
        values["task"],
        row_id,
    )
    return row_id


def _rejected(message: Any = None, exc: BaseException | None = None, **_: Any) -> None:
    if message is not None:
        capture(message, exc)


def _unknown(message: Any = None, exc: BaseException | None = None, **_: Any) -> None:
    if message is not None:
        capture(message, exc if exc is not None else KeyError("task"))


def connect() -> None:
    """Connect the receivers of ``task_rejected`` and ``task_unknown`` (connecting twice changes nothing)."""
    task_rejected.connect(_rejected, weak=False, dispatch_uid="campaignflow.dead_letter_rejected")
    task_unknown.connect(_unknown, weak=False, dispatch_uid="campaignflow.dead_letter_unknown")
