"""``GET /v1/runs`` (filters, keyset pages), ``GET /v1/runs/{id}`` (the envelope), and one run's
``cancel``, ``retry`` and ``signals`` (resume its wait)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query

from orchestration.api import cursor
from orchestration.api.auth import Operator, Reader
from orchestration.api.filters import list_filter
from orchestration.api.schemas.common import RunAction
from orchestration.api.schemas.runs import RetryRequest, RunPage, RunSummary, SignalAnswer, SignalRequest
from orchestration.control import run_control, signals
from orchestration.envelope import Envelope
from orchestration.store import repository as repo
from orchestration.store import run_search, sql_engine
from orchestration.store.run_search import RunFilter

router = APIRouter(prefix="/v1/runs", tags=["runs"])


@router.get("", response_model=RunPage, summary="List runs, newest first")
def list_runs(
    _: Reader,
    f: Annotated[RunFilter, Depends(list_filter)],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor_: Annotated[str | None, Query(alias="cursor", max_length=400)] = None,
) -> RunPage:
    """Runs matching every filter given, newest first, ``limit`` a page. ``next_cursor`` continues
    after the last run of this page, even while new runs arrive."""
    after = cursor.decode(cursor_) if cursor_ is not None else None
    with sql_engine().connect() as conn:
        rows = run_search.page_runs(conn, f, after=after, limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    last = page[-1] if page else None
    return RunPage(
        items=[RunSummary.model_validate(r.__dict__) for r in page],
        next_cursor=cursor.encode(last.created_at, last.run_id) if more and last else None,
    )


@router.get("/{run_id}", response_model=Envelope, summary="A run's envelope")
def get_run(run_id: str, _: Reader) -> Envelope:
    """The envelope: metadata and one record per step, as ``campaignflow runs show --json``."""
    with sql_engine().connect() as conn:
        return repo.get_envelope(conn, run_id)


@router.post("/{run_id}/cancel", response_model=RunAction, summary="Cancel a run")
def cancel_run(run_id: str, _: Operator) -> RunAction:
    """Cancel a queued, running or waiting run; its remaining steps do not run. A run that already ended
    keeps its status (answered as it is)."""
    return RunAction(run_id=run_id, status=run_control.cancel_run(run_id))


@router.post("/{run_id}/retry", response_model=RunAction, status_code=202, summary="Retry a failed run")
def retry_run(run_id: str, _: Operator, request: Annotated[RetryRequest | None, Body()] = None) -> RunAction:
    """Re-drive a failed run from its failed step (succeeded steps keep their output), with a fresh
    deadline and budget of tries; ``payload_patch`` corrects the stored payload first. 409 when the
    run did not fail."""
    patch = request.payload_patch if request is not None else None
    return RunAction(run_id=run_id, status=run_control.retry_run(run_id, patch))


@router.post("/{run_id}/signals", response_model=SignalAnswer, summary="Send a signal to a run")
def signal_run(run_id: str, _: Operator, request: Annotated[SignalRequest, Body()]) -> SignalAnswer:
    """Resume the run's wait for ``signal`` (its ``data`` becomes the wait's output), or keep the
    signal until that wait starts. The same ``signal_id`` twice is one signal. 409 when the run has
    ended; 422 when its flow waits for no such signal."""
    result = signals.signal_run(run_id, request.signal, request.data, request.signal_id)
    return SignalAnswer(**{k: v for k, v in result.as_dict().items() if k != "error"})
