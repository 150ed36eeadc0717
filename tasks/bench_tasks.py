"""Plain Celery tasks for ``campaignflow bench``: the same canvas shapes with no store, the baseline."""

from __future__ import annotations

import time
from typing import Any

from orchestration.runtime import Runtime


def plain(*_: Any) -> float:
    """Does nothing; returns when it started (seconds since the epoch)."""
    return time.time()


def bind(runtime: Runtime) -> list[str]:
    task = runtime.app.task(name="campaignflow.bench.plain", acks_late=True)(plain)
    return [task.name]
