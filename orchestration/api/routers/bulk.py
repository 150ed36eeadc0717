"""Bulk cancel and retry by filter, with a dry-run count first: ``POST /v1/runs/bulk/cancel|retry``
with ``dry_run: true`` (the default) answers how many runs the action would take; the action itself
needs that count back as ``expected_count`` and is refused (409) when the filter now matches another
number of runs."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter

from orchestration.api.auth import Operator
from orchestration.api.errors import ApiError
from orchestration.api.filters import run_filter
from orchestration.api.schemas.common import RunAction
from orchestration.api.schemas.runs import BulkRequest, BulkResult
from orchestration.control import run_control
from orchestration.errors import CampaignflowError
from orchestration.names import OPEN_RUN_STATUSES, RunStatus
from orchestration.store import run_search, sql_engine

router = APIRouter(prefix="/v1/runs/bulk", tags=["runs"])
#: Most runs one bulk call acts on: narrow the filter (a time range) for more.
BULK_LIMIT = 1000


def _bulk(request: BulkRequest, only: tuple[str, ...], act: Callable[[str], str]) -> BulkResult:
    f = run_filter(request.filter, only)
    with sql_engine().connect() as conn:
        matched = run_search.count_runs(conn, f)
        if request.dry_run:
            return BulkResult(matched=matched, dry_run=True)
        if request.expected_count is None:
            raise ApiError(
                422,
                "count_required",
                "expected_count: required to act; send the count of a dry run (dry_run: true) first",
                "expected_count",
            )
        if matched != request.expected_count:
            raise ApiError(
                409,
                "count_changed",
                f"the filter now matches {matched} runs, not {request.expected_count}; dry-run again",
                "expected_count",
                matched=matched,
            )
        if matched > BULK_LIMIT:
            raise ApiError(
                422,
                "too_many",
                f"the filter matches {matched} runs, over {BULK_LIMIT} per call; narrow it (a time range)",
                "filter",
            )
        ids = run_search.run_ids(conn, f, BULK_LIMIT)
    return BulkResult(matched=matched, dry_run=False, results=[_one(run_id, act) for run_id in ids])


def _one(run_id: str, act: Callable[[str], str]) -> RunAction:
    try:
        return RunAction(run_id=run_id, status=act(run_id))
    except CampaignflowError as exc:  # the run changed since it was counted: said per run
        return RunAction(run_id=run_id, status="unchanged", error=str(exc))


@router.post("/cancel", response_model=BulkResult, summary="Cancel the live or waiting runs a filter matches")
def bulk_cancel(request: BulkRequest, _: Operator) -> BulkResult:
    live = tuple(sorted(str(s) for s in OPEN_RUN_STATUSES))
    return _bulk(request, live, run_control.cancel_run)


@router.post("/retry", response_model=BulkResult, summary="Retry the failed runs a filter matches")
def bulk_retry(request: BulkRequest, _: Operator) -> BulkResult:
    return _bulk(request, (str(RunStatus.FAILED),), lambda run_id: run_control.retry_run(run_id))
