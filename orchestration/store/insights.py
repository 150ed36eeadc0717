"""Read-only views for the web console: a run's flow snapshot, the versions of a flow that ran,
runs by status and step outcomes by agent since a time (the overview page)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestration.names import StepStatus
from orchestration.store.base import aware, utcnow
from orchestration.store.tables import run_t, step_t


def _json(value: Any) -> Any:
    if isinstance(value, str):  # a driver that returns JSON as text
        return json.loads(value)
    return value


def flow_def_of_run(conn: Connection, run_id: str) -> dict[str, Any] | None:
    """The flow snapshot the run was opened with (None: no such run)."""
    value = conn.execute(sa.select(run_t.c.flow_def).where(run_t.c.run_id == run_id)).scalar_one_or_none()
    return None if value is None else dict(_json(value))


@dataclass(frozen=True)
class FlowVersion:
    version: str
    runs: int
    last_run_at: datetime


def flow_versions(conn: Connection, flow: str) -> list[FlowVersion]:
    """Each version of ``flow`` that has runs: how many, and when the last one opened (newest first)."""
    query = (
        sa.select(run_t.c.flow_version, sa.func.count(), sa.func.max(run_t.c.created_at))
        .where(run_t.c.flow_name == flow)
        .group_by(run_t.c.flow_version)
        .order_by(sa.func.max(run_t.c.created_at).desc())
    )
    return [FlowVersion(str(v), int(n), aware(at) or utcnow()) for v, n, at in conn.execute(query)]


def flow_def_of_version(conn: Connection, flow: str, version: str) -> dict[str, Any] | None:
    """The snapshot of ``flow`` at ``version`` kept by its newest run (None: no run of it)."""
    value = conn.execute(
        sa.select(run_t.c.flow_def)
        .where(run_t.c.flow_name == flow, run_t.c.flow_version == version)
        .order_by(run_t.c.created_at.desc())
        .limit(1)
    ).scalar_one_or_none()
    return None if value is None else dict(_json(value))


def runs_by_status(conn: Connection, since: datetime) -> dict[str, int]:
    """Runs opened since ``since``, per status (the ``(created_at, run_id)`` index finds them)."""
    query = (
        sa.select(run_t.c.status, sa.func.count()).where(run_t.c.created_at >= since).group_by(run_t.c.status)
    )
    return {str(status): int(n) for status, n in conn.execute(query)}


@dataclass(frozen=True)
class AgentOutcomes:
    """The agent steps of the runs opened since a time: how many ended, failed, and their tries."""

    agent: str
    finished: int
    failed: int
    tries: int

    @property
    def failure_rate(self) -> float:
        return self.failed / self.finished if self.finished else 0.0


def step_outcomes(conn: Connection, since: datetime) -> list[AgentOutcomes]:
    """Per agent, the steps of runs opened since ``since`` (joins, branches and maps left out)."""
    ended = step_t.c.status.in_((StepStatus.SUCCEEDED, StepStatus.FAILED))
    query = (
        sa.select(
            step_t.c.agent,
            sa.func.count().filter(ended),
            sa.func.count().filter(step_t.c.status == StepStatus.FAILED),
            sa.func.coalesce(sa.func.sum(step_t.c.attempts), 0),
        )
        .select_from(step_t.join(run_t, run_t.c.run_id == step_t.c.run_id))
        .where(
            run_t.c.created_at >= since, step_t.c.agent.is_not(None), ~step_t.c.agent.startswith("engine.")
        )
        .group_by(step_t.c.agent)
        .order_by(step_t.c.agent)
    )
    return [AgentOutcomes(str(a), int(f), int(x), int(t)) for a, f, x, t in conn.execute(query)]


def step_tries(conn: Connection, run_id: str) -> dict[str, list[dict[str, Any]]]:
    """Per step of the run, when each try started and its Celery task (records that kept them)."""
    rows = conn.execute(
        sa.select(step_t.c.step_id, step_t.c.tries).where(
            step_t.c.run_id == run_id, step_t.c.tries.is_not(None)
        )
    )
    return {str(step_id): list(_json(tries)) for step_id, tries in rows}
