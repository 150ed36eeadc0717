"""``GET /runs``: the runs list with the API's filters, keyset pages and live status."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from orchestration.api import cursor
from orchestration.api.console.web import Viewer, page
from orchestration.api.errors import ApiError
from orchestration.api.filters import run_filter
from orchestration.api.schemas.runs import RunFilterIn
from orchestration.names import RunStatus
from orchestration.runtime import current
from orchestration.store import run_search, sql_engine
from orchestration.timefmt import as_utc

router = APIRouter(tags=["console"], include_in_schema=False)
PAGE_SIZE = 50
#: Seconds between two refreshes of a live page.
REFRESH_SECONDS = 3

Text = Annotated[str | None, Query(max_length=200)]


def _time(name: str, value: str | None, problems: list[str]) -> datetime | None:
    if not value:
        return None
    try:
        return as_utc(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
    except ValueError:
        problems.append(f"{name}: {value!r} is not a date and time; write it like 2026-12-04T09:30 (UTC)")
        return None


def _filter_in(status: list[str], form: dict[str, str | None], problems: list[str]) -> RunFilterIn | None:
    known = {s.value for s in RunStatus}
    bad = [s for s in status if s not in known]
    if bad:
        problems.append(f"status: {bad[0]!r} is not a run status ({', '.join(sorted(known))})")
    try:
        return RunFilterIn.model_validate(
            {
                "status": [s for s in status if s in known],
                "flow": form["flow"] or None,
                "campaign": form["campaign"] or None,
                "event_id": form["event_id"] or None,
                "created_after": _time("created_after", form["created_after"], problems),
                "created_before": _time("created_before", form["created_before"], problems),
                "q": form["q"] or None,
            }
        )
    except ValidationError as exc:
        problems += [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return None


@router.get("/runs", response_class=HTMLResponse)
def runs_page(
    visit: Viewer,
    status: Annotated[list[str] | None, Query()] = None,
    flow: Text = None,
    campaign: Text = None,
    event_id: Text = None,
    created_after: Text = None,
    created_before: Text = None,
    q: Text = None,
    cursor_: Annotated[str | None, Query(alias="cursor", max_length=400)] = None,
) -> HTMLResponse:
    form = {
        "flow": flow,
        "campaign": campaign,
        "event_id": event_id,
        "created_after": created_after,
        "created_before": created_before,
        "q": q,
    }
    problems: list[str] = []
    chosen = status or []
    f_in = _filter_in(chosen, form, problems)
    rows, next_cursor = [], None
    try:
        after = cursor.decode(cursor_) if cursor_ else None
        if f_in is not None and not problems:
            f = run_filter(f_in)
            with sql_engine().connect() as conn:
                found = run_search.page_runs(conn, f, after=after, limit=PAGE_SIZE + 1)
            rows = found[:PAGE_SIZE]
            if len(found) > PAGE_SIZE:
                next_cursor = cursor.encode(rows[-1].created_at, rows[-1].run_id)
    except ApiError as exc:
        problems.append(exc.message)
    query = [("status", s) for s in chosen] + [(k, v) for k, v in form.items() if v]
    return page(
        visit,
        "runs.html",
        http_status=400 if problems else 200,
        rows=rows,
        problems=problems,
        chosen=set(chosen),
        form=form,
        statuses=[s.value for s in RunStatus],
        flows=sorted(f.name for f in current().flows),
        query=query,
        next_cursor=next_cursor,
        paged=bool(cursor_),
        refresh=REFRESH_SECONDS,
    )
