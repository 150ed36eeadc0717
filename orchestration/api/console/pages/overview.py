"""``GET /overview``: runs by status over the last hour, step failure rate by agent (the runs of
the last hour), queue depths (the broker's Redis, when the broker is Redis)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import redis
from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from orchestration.api.console.pages.runs import REFRESH_SECONDS
from orchestration.api.console.web import Viewer, page
from orchestration.control import deadletters
from orchestration.engine import step_metrics
from orchestration.names import RunStatus
from orchestration.ops.metrics import queue_keys
from orchestration.runtime import current
from orchestration.store import insights, sql_engine

router = APIRouter(tags=["console"], include_in_schema=False)
log = logging.getLogger(__name__)
WINDOW = timedelta(hours=1)


def queue_depths(queues: list[str], key_prefix: str) -> dict[str, int] | None:
    """Messages waiting per queue (all priorities); None when the broker is not Redis or is away."""
    conn = step_metrics.client()
    if conn is None:
        return None
    keys = {queue: queue_keys(queue, key_prefix) for queue in queues}
    try:
        pipe = conn.pipeline(transaction=False)
        for queue in queues:
            for key in keys[queue]:
                pipe.llen(key)
        lengths = iter(pipe.execute())
    except redis.RedisError as exc:
        log.warning("console: broker not readable for queue depths: %s", exc)
        return None
    return {queue: sum(int(next(lengths)) for _ in keys[queue]) for queue in queues}


@router.get("/overview", response_class=HTMLResponse)
def overview_page(visit: Viewer) -> HTMLResponse:
    since = datetime.now(UTC) - WINDOW
    with sql_engine().connect() as conn:
        by_status = insights.runs_by_status(conn, since)
        agents = insights.step_outcomes(conn, since)
    runtime = current()
    depths = queue_depths(runtime.registry.queue_names(), visit.settings.redis_key_prefix or "")
    total = sum(by_status.values())
    return page(
        visit,
        "overview.html",
        by_status=[(s.value, by_status.get(s.value, 0)) for s in RunStatus],
        total=total,
        most=max(by_status.values(), default=0),
        agents=agents,
        depths=depths,
        dead=sum(deadletters.dead_counts().values()),
        since=since,
        refresh=REFRESH_SECONDS * 2,
    )
