"""The one Celery app of campaignflow, configured only from ``celeryconfig``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from celery import Celery
from celery.signals import worker_process_init

import orchestration.engine.signals  # noqa: F401  (step log context and step metrics)

if TYPE_CHECKING:
    from orchestration.engine.compiler import OrchestrationEngine

TASK_MODULES = ["tasks.agent_tasks", "tasks.engine_tasks", "tasks.public", "tasks.bench_tasks"]

app = Celery("campaignflow", include=TASK_MODULES)
app.config_from_object("celeryconfig", force=True)


@worker_process_init.connect
def _fresh_engines(**_: Any) -> None:
    """A forked pool child must not reuse the parent's database connections."""
    from orchestration.store.db import reset_engines

    reset_engines()


def engine() -> OrchestrationEngine:
    """The OrchestrationEngine bound to this app and the global registry."""
    from orchestration.engine.compiler import OrchestrationEngine
    from orchestration.registry import registry

    return OrchestrationEngine(app, registry)
