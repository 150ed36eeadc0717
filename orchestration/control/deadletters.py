"""Dead letters for operators: list them, look at one, publish one again after a fix (purging
old ones is retention's: ``orchestration.control.retention``).

The workers keep them (``orchestration.engine.deadletters``); this module reads them back. A replay
publishes the stored body, headers and content type to the same queue, once the message is one
the workers can now process: its body decodes with the accepted content types (never pickle) and
its task is registered (after deploying the code that defines it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kombu.exceptions import ContentDisallowed, DecodeError
from kombu.serialization import loads, prepare_accept_content

from orchestration.errors import CampaignflowError
from orchestration.runtime import Runtime, current
from orchestration.store import deadletters as store
from orchestration.store import sql_engine
from orchestration.timefmt import iso_utc


class DeadLetterNotFoundError(CampaignflowError, LookupError):
    """Raised when no dead letter has the given id."""


class NotReplayableError(CampaignflowError):
    """Raised when a dead letter cannot be published again yet (still undecodable, task still
    unknown, body kept only in part, already replayed); nothing is published."""


@dataclass(frozen=True)
class DeadLetter:
    id: int
    queue: str
    task: str | None
    reason: str
    detail: str
    count: int
    status: str
    content_type: str | None
    content_encoding: str | None
    body_size: int
    first_seen: datetime
    last_seen: datetime
    replayed_at: datetime | None
    #: Only when one dead letter is read (``get_dead_letter``).
    headers: dict[str, Any] | None = None
    body: bytes | None = None

    @property
    def body_complete(self) -> bool | None:
        return None if self.body is None else len(self.body) == self.body_size

    def body_text(self) -> str | None:
        """The body as text when it is UTF-8, else None."""
        try:
            return None if self.body is None else self.body.decode("utf-8")
        except UnicodeDecodeError:
            return None

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "body"}
        data.update(
            first_seen=iso_utc(self.first_seen),
            last_seen=iso_utc(self.last_seen),
            replayed_at=iso_utc(self.replayed_at),
        )
        if self.body is not None:
            data.update(
                body_text=self.body_text(), body_hex=self.body.hex(), body_complete=self.body_complete
            )
        return data


def _row(r: Any, full: bool = False) -> DeadLetter:
    return DeadLetter(
        id=int(r.id),
        queue=r.queue,
        task=r.task,
        reason=r.reason,
        detail=r.detail,
        count=int(r._mapping["count"]),  # by key: "count" is also the name of a tuple method
        status=r.status,
        content_type=r.content_type,
        content_encoding=r.content_encoding,
        body_size=int(r.body_size),
        first_seen=r.first_seen,
        last_seen=r.last_seen,
        replayed_at=r.replayed_at,
        headers=json.loads(r.headers) if full else None,
        body=bytes(r.body) if full else None,
    )


def list_dead_letters(
    status: str | None = store.DEAD, queue: str | None = None, limit: int = 50
) -> list[DeadLetter]:
    """Most recently seen first; ``status`` ``dead`` (not replayed), ``replayed``, or None for all."""
    with sql_engine().connect() as conn:
        return [_row(r) for r in store.list_dead_letters(conn, status, queue, limit)]


def get_dead_letter(dead_letter_id: int) -> DeadLetter:
    with sql_engine().connect() as conn:
        row = store.get_dead_letter(conn, dead_letter_id)
    if row is None:
        raise DeadLetterNotFoundError(
            f"dead letter {dead_letter_id} not found; see `campaignflow deadletters list --status all`"
        )
    return _row(row, full=True)


def replay_problem(letter: DeadLetter, runtime: Runtime) -> str | None:
    """Why ``letter`` cannot be published again now, with the fix; None when it can."""
    assert letter.body is not None
    assert letter.headers is not None
    if letter.status == store.REPLAYED:
        return f"it was replayed at {iso_utc(letter.replayed_at)}; it comes back here if it fails again"
    if not letter.body_complete:
        kept = f"only {len(letter.body)} of its {letter.body_size} bytes were kept"
        return f"{kept}; publish it again from its source"
    accept = prepare_accept_content(runtime.app.conf.accept_content)  # type: ignore[no-untyped-call]
    try:
        loads(letter.body, letter.content_type, letter.content_encoding, accept=accept)  # type: ignore[no-untyped-call]
    except (ContentDisallowed, DecodeError) as exc:
        return f"its body still does not decode ({exc}); publish a corrected message from its source"
    task = letter.headers.get("task")
    if not isinstance(task, str):
        return "it is not a task message (no 'task' header); publish it with send_task from its source"
    if task not in runtime.app.tasks:
        return f"task {task!r} is still unknown here; deploy the code that defines it, then replay again"
    if letter.queue not in runtime.app.amqp.queues:
        return f"queue {letter.queue!r} is not one of this deployment's queues; check the agent pools"
    return None


def replay(dead_letter_id: int, runtime: Runtime | None = None) -> DeadLetter:
    """Publish a dead letter again, as it was received, to its queue; it becomes ``replayed``.

    Raises :class:`NotReplayableError` (nothing published) when the workers still could not process it.
    """
    runtime = runtime or current()
    letter = get_dead_letter(dead_letter_id)
    problem = replay_problem(letter, runtime)
    if problem is not None:
        raise NotReplayableError(f"dead letter {dead_letter_id} not replayed: {problem}")
    assert letter.body is not None
    assert letter.headers is not None
    queue = runtime.app.amqp.queues[letter.queue]
    with runtime.app.producer_or_acquire() as producer:
        producer.publish(
            letter.body,
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            declare=[queue],
            headers=letter.headers,
            content_type=letter.content_type,
            content_encoding=letter.content_encoding,
            correlation_id=letter.headers.get("id"),
            retry=True,
            retry_policy={"max_retries": 3, "interval_start": 0, "interval_step": 0.5},
        )
    with sql_engine().begin() as conn:
        store.mark_replayed(conn, dead_letter_id)
    return get_dead_letter(dead_letter_id)


def dead_counts() -> dict[str, int]:
    """Dead letters not replayed, per reason."""
    with sql_engine().connect() as conn:
        return store.dead_counts(conn)
