"""Rejected events and dead letters: lists, one of each with its body, and replay (confirmed first).
A rejected event may be replayed with a corrected body."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from orchestration.api.console.web import Actor, Form, Viewer, page, redirect, refusal
from orchestration.api.schemas.common import StoredId
from orchestration.api.schemas.control import LetterStatus, RejectedStatus
from orchestration.control import deadletters, rejected
from orchestration.control.manager import manager

router = APIRouter(tags=["console"], include_in_schema=False)
LIMIT = 200


@router.get("/rejected", response_class=HTMLResponse)
def rejected_list(visit: Viewer, status: RejectedStatus = RejectedStatus.REJECTED) -> HTMLResponse:
    rows = rejected.list_rejected(None if status is RejectedStatus.ALL else str(status), LIMIT)
    return page(
        visit, "rejected.html", rows=rows, status=str(status), statuses=[s.value for s in RejectedStatus]
    )


@router.get("/rejected/{rejected_id}", response_class=HTMLResponse)
def rejected_one(
    rejected_id: StoredId, visit: Viewer, notice: Annotated[str | None, Query(max_length=40)] = None
) -> HTMLResponse:
    row = rejected.get_rejected(rejected_id)
    body = row.raw if isinstance(row.raw, str) else json.dumps(row.raw, indent=2, ensure_ascii=False)
    return page(visit, "rejected_one.html", row=row, body=body, notice=notice)


def _corrected(text: str | None) -> dict[str, Any] | None:
    if text is None or not text.strip():
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise refusal(422, f"event: not valid JSON ({exc}); fix it and replay again") from None
    if not isinstance(value, dict):
        raise refusal(422, "event: must be one JSON object (id, type, payload, ...)")
    return value


@router.post("/rejected/{rejected_id}/replay", response_class=HTMLResponse)
def rejected_replay(rejected_id: StoredId, visit: Actor, form: Form) -> Response:
    """Ingest it again: as stored, or with the corrected body from the form."""
    row = rejected.get_rejected(rejected_id)
    text = form.get("event")
    stored = row.raw if isinstance(row.raw, str) else json.dumps(row.raw, indent=2, ensure_ascii=False)
    event = _corrected(text) if text is not None and text.strip() != stored.strip() else None
    if form.get("confirm") != "yes":
        return page(
            visit,
            "confirm.html",
            title=f"Replay rejected event {rejected_id}?",
            action=f"/rejected/{rejected_id}/replay",
            back=f"/rejected/{rejected_id}",
            fields={"event": text or ""},
            button="Replay it",
            kind="replay",
            event=event,
        )
    handle = rejected.replay(rejected_id, event=event, manager=manager())
    return redirect(visit, f"/runs/{handle.run_id}")


@router.get("/dead-letters", response_class=HTMLResponse)
def letters_list(visit: Viewer, status: LetterStatus = LetterStatus.DEAD) -> HTMLResponse:
    rows = deadletters.list_dead_letters(None if status is LetterStatus.ALL else str(status), None, LIMIT)
    return page(
        visit, "letters.html", rows=rows, status=str(status), statuses=[s.value for s in LetterStatus]
    )


@router.get("/dead-letters/{letter_id}", response_class=HTMLResponse)
def letter_one(
    letter_id: StoredId, visit: Viewer, notice: Annotated[str | None, Query(max_length=40)] = None
) -> HTMLResponse:
    letter = deadletters.get_dead_letter(letter_id)
    return page(visit, "letter_one.html", letter=letter, notice=notice)


@router.post("/dead-letters/{letter_id}/replay", response_class=HTMLResponse)
def letter_replay(letter_id: StoredId, visit: Actor, form: Form) -> Response:
    """Publish it again, as received, to its queue (refused while it still cannot be processed)."""
    if form.get("confirm") != "yes":
        letter = deadletters.get_dead_letter(letter_id)
        return page(
            visit,
            "confirm.html",
            title=f"Replay dead letter {letter_id}?",
            action=f"/dead-letters/{letter_id}/replay",
            back=f"/dead-letters/{letter_id}",
            fields={},
            button="Publish it again",
            kind="letter",
            letter=letter,
        )
    deadletters.replay(letter_id)
    return redirect(visit, f"/dead-letters/{letter_id}?notice=replayed")
