"""Rejected events: an event that cannot become a run (bad shape, no route, a payload the flow does
not accept, text a database cannot hold, too deep, too large) is stored with the reason and the raw
body, never dropped, and can be replayed after a fix.

Storing a rejection cannot fail on the event's content: the body is kept as safe JSON text
(``orchestration.store.jsontext``: NUL characters and lone surrogates as escapes, cut when too deep
or over ``CAMPAIGNFLOW_MAX_EVENT_BYTES``), and the event id, reason and problems as escaped text.
The same body (by its hash) with the same event id, or with none, updates its open row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DataError

from orchestration.errors import (
    CampaignflowError,
    EventValidationError,
    FieldError,
    RouteNotFoundError,
    UnknownNameError,
)
from orchestration.settings import get_settings
from orchestration.store import rejected as store
from orchestration.store import sql_engine
from orchestration.store.jsontext import StoredJSON, escape, load_json, store_json
from orchestration.timefmt import iso_utc

if TYPE_CHECKING:
    from orchestration.control.manager import CampaignManager
    from orchestration.orchestrators import RunHandle
    from orchestration.orchestrators.base import Mode

#: The errors that make an event a rejected event (anything else, e.g. a database outage, is raised).
#: ``DataError``: the database refused a value the checks let through; the event is kept, not lost.
REJECTABLE: tuple[type[Exception], ...] = (FieldError, RouteNotFoundError, UnknownNameError, DataError)
#: Longest problem text kept (a problem quotes names, never whole values).
MAX_PROBLEM_CHARS = 2000


class EventRejectedError(CampaignflowError):
    """Raised when an event is rejected and stored; ``rejected_id`` names the row to replay after a fix."""

    def __init__(self, rejected_id: int, event_id: str | None, kind: str, problems: list[str]) -> None:
        self.rejected_id, self.event_id, self.kind, self.problems = rejected_id, event_id, kind, problems
        super().__init__(
            f"event {event_id or '(no id)'} rejected ({kind}): {'; '.join(problems)} -- stored as "
            f"rejected event {rejected_id}; fix the cause, then `campaignflow rejected replay {rejected_id}`"
        )


class RejectedNotFoundError(CampaignflowError, LookupError):
    """Raised when no rejected event has the given id."""


class AlreadyReplayedError(CampaignflowError):
    """Raised when replaying a rejected event that was already replayed into a run."""


class IncompleteBodyError(CampaignflowError):
    """Raised when replaying, as stored, a rejected event whose body was kept only in part."""


@dataclass(frozen=True)
class Rejected:
    id: int
    event_id: str | None
    reason: str
    problems: list[str]
    status: str
    #: The body as received; its stored text when it was kept only in part (see ``raw_complete``).
    raw: Any
    raw_complete: bool
    replay_run_id: str | None
    created_at: datetime
    replayed_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "created_at": iso_utc(self.created_at),
            "replayed_at": iso_utc(self.replayed_at),
        }


def kind_of(exc: BaseException) -> str:
    if isinstance(exc, EventValidationError):
        return "invalid_event"
    if isinstance(exc, RouteNotFoundError):
        return "no_route"
    if isinstance(exc, UnknownNameError):
        return "unknown_target"
    if isinstance(exc, DataError):
        return "refused_by_store"
    return "invalid_payload"


def problems_of(exc: BaseException) -> list[str]:
    if isinstance(exc, FieldError):
        problems = list(exc.problems)
    elif isinstance(exc, DataError):
        refused = str(exc.orig).strip()
        problems = [f"the run store refused a value ({refused}); correct the event and replay it"]
    else:
        problems = [str(exc)]
    return [escape(p)[:MAX_PROBLEM_CHARS] for p in problems] or ["(no detail)"]


def stored_body(raw: Any) -> StoredJSON:
    """The raw body as safe JSON text (an ``Event`` model as its JSON form)."""
    if hasattr(raw, "model_dump"):
        raw = raw.model_dump(mode="json")
    return store_json(raw, max_bytes=get_settings().max_event_bytes)


def body_columns(body: StoredJSON) -> dict[str, Any]:
    return {"raw": body.text, "raw_complete": body.complete, "body_hash": body.digest}


def event_id_of(raw: Any) -> str | None:
    """The event's id as text a database stores (escaped, 200 characters at most), if it has one."""
    value = raw.get("id") if isinstance(raw, Mapping) else getattr(raw, "id", None)
    if value in (None, ""):
        return None
    return escape(value if isinstance(value, str) else repr(value))[:200]


def reject(raw: Any, exc: BaseException, *, rejected_id: int | None = None) -> EventRejectedError:
    """Store (or, for a replay, update) the rejected event; returns the error to raise."""
    body, kind, problems = stored_body(raw), kind_of(exc), problems_of(exc)
    event_id = event_id_of(raw)
    values = {
        "event_id": event_id,
        **body_columns(body),
        "reason": f"{kind}: {problems[0]}",
        "problems": problems,
    }
    with sql_engine().begin() as conn:
        if rejected_id is None:
            # the same body sent again while still rejected updates that row instead of adding one
            rejected_id = store.open_rejection(conn, event_id, body.digest)
        if rejected_id is None:
            rejected_id = store.insert_rejected(conn, values)
        else:
            store.update_rejected(conn, rejected_id, values)
    return EventRejectedError(rejected_id, event_id, kind, problems)


def _row(r: Any) -> Rejected:
    return Rejected(
        id=int(r.id),
        event_id=r.event_id,
        reason=r.reason,
        problems=list(r.problems or []),
        status=r.status,
        raw=load_json(r.raw, r.raw_complete),
        raw_complete=bool(r.raw_complete),
        replay_run_id=r.replay_run_id,
        created_at=r.created_at,
        replayed_at=r.replayed_at,
    )


def list_rejected(status: str | None = "rejected", limit: int = 50) -> list[Rejected]:
    """Newest first; ``status`` ``rejected`` (still open), ``replayed``, or None for all."""
    with sql_engine().connect() as conn:
        return [_row(r) for r in store.list_rejected(conn, status, limit)]


def get_rejected(rejected_id: int) -> Rejected:
    with sql_engine().connect() as conn:
        row = store.get_rejected(conn, rejected_id)
    if row is None:
        raise RejectedNotFoundError(
            f"rejected event {rejected_id} not found; see `campaignflow rejected list`"
        )
    return _row(row)


def replay(
    rejected_id: int,
    *,
    event: Mapping[str, Any] | None = None,
    mode: Mode = "async",
    manager: CampaignManager,
) -> RunHandle:
    """Ingest a rejected event again (its stored body, or ``event`` as a corrected body).

    ``manager`` opens the run (:func:`orchestration.control.manager.manager` gives this process's).
    Accepted: the row becomes ``replayed`` with the run id. Rejected again: the row is updated with
    the new reason (and the corrected body) and :class:`EventRejectedError` is raised.
    """
    row = get_rejected(rejected_id)
    if row.status == "replayed":
        raise AlreadyReplayedError(
            f"rejected event {rejected_id} was already replayed as run {row.replay_run_id}"
        )
    if event is None and not row.raw_complete:
        raise IncompleteBodyError(
            f"rejected event {rejected_id} keeps only part of its body (it was too large or nested too "
            f"deeply); replay it with a corrected body: `campaignflow rejected replay {rejected_id} "
            "--event FILE`"
        )
    body = row.raw if event is None else event
    try:
        handle = manager.open_run(body, mode=mode)
    except REJECTABLE as exc:
        raise reject(body, exc, rejected_id=rejected_id) from exc
    with sql_engine().begin() as conn:
        store.mark_replayed(conn, rejected_id, body_columns(stored_body(body)), handle.run_id)
    return handle
