"""The start of a published run: its first task takes the run's publication, once per publish.

Every publish of a run's canvas (``OrchestrationEngine.compile`` with a ``publication``) gives the
tasks the canvas begins with (the first step; every member's first task when it begins with a
parallel block) the keyword ``start``: the publication's number and a token of that publish alone.
Before anything else such a task calls :func:`take`. The first token to take the run's current
publication keeps it; the same token again (a redelivered or retried message, another member of the
same canvas) goes on, and any other token (the same publication published twice: a crash between
publishing and marking it in the outbox) stops there. So no extra task runs before a run's first
step, and a publication sent twice starts the run once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from celery.canvas import Signature, _chain, chord, group

from orchestration.store import outbox
from orchestration.store.db import autocommit

log = logging.getLogger(__name__)

#: The keyword argument of a canvas's first tasks: ``{"publication": int, "token": str}``.
START_KWARG = "start"


def start_of(publication: int) -> dict[str, Any]:
    """The ``start`` of one publish of the run's publication ``publication`` (a fresh token)."""
    return {"publication": publication, "token": uuid.uuid4().hex}


def entry_tasks(sig: Signature) -> list[Signature]:
    """The tasks that run first when ``sig`` is applied."""
    if isinstance(sig, chord | group):
        return [task for member in sig.tasks for task in entry_tasks(member)]
    if isinstance(sig, _chain):
        return entry_tasks(sig.tasks[0])
    return [sig]


def mark_entries(sig: Signature, start: Mapping[str, Any]) -> None:
    """Give every first task of ``sig`` the keyword ``start``."""
    for task in entry_tasks(sig):
        task.kwargs[START_KWARG] = dict(start)


def take(run_id: str, start: Mapping[str, Any] | None) -> bool:
    """May the task go on? Always without a ``start``; with one, only when its token takes (or
    already holds) the run's current publication while the run is live. A refusal is logged once
    per task, with why."""
    if start is None:
        return True
    publication, token = int(start["publication"]), str(start["token"])
    with autocommit() as conn:
        if outbox.take(conn, run_id, publication, token):
            return True
        why = outbox.why_not_taken(conn, run_id, publication)
    log.info("run %s: a copy of publication %d (token %s) stops here: %s", run_id, publication, token, why)
    return False
