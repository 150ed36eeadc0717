"""Plain Celery tasks for ``campaignflow bench``: the same canvas shapes with no store, the baseline."""

from __future__ import annotations

import time
from typing import Any

from orchestration.app import app
from orchestration.names import BENCH_PLAIN_TASK


@app.task(name=BENCH_PLAIN_TASK, acks_late=True)
def plain(*_: Any) -> float:
    """Does nothing; returns when it started (seconds since the epoch)."""
    return time.time()
