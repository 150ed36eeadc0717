"""Shared by the durable-time tests: flows, the poller driven by the test, the store's rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from orchestration.engine import timers
from orchestration.envelope import Envelope
from orchestration.flows import Flow, parse_flow
from orchestration.orchestrators.base import FlowRunner
from orchestration.store import sql_engine
from orchestration.store.tables import outbox_t, signal_t, timer_t, wait_t
from tests.support.agents import ledger
from tests.support.runs import envelope
from tests.support.wait import eventually
from tests.support.wiring import engine, registry


def flow(definition: dict[str, Any]) -> Flow:
    return parse_flow(definition, registry)


def start(definition: dict[str, Any], payload: dict[str, Any] | None = None) -> str:
    return FlowRunner(engine(), flow(definition)).run(payload or {}, mode="async").run_id


def wait_for_status(run_id: str, status: str, timeout: float = 30.0) -> Envelope:
    def reached() -> Envelope:
        env = envelope(run_id)
        assert env.status == status, f"still {env.status}"
        return env

    return eventually(reached, timeout, f"run {run_id} to be {status}")


def poll_until_ended(run_id: str, timeout: float = 30.0, now: datetime | None = None) -> Envelope:
    """Drive the timer poller (beat is not running in tests) until the run ends."""

    def ended() -> Envelope:
        timers.fire_due(engine(), now=now)
        env = envelope(run_id)
        assert env.terminal, f"still {env.status}"
        return env

    return eventually(ended, timeout, f"run {run_id} to end", interval=0.2)


def calls(run_id: str, step_id: str) -> int:
    return int(ledger().get(f"calls:{run_id}:{step_id}") or 0)


def rows(table: sa.Table, run_id: str) -> list[dict[str, Any]]:
    with sql_engine().connect() as conn:
        query = sa.select(table).where(table.c.run_id == run_id).order_by(table.c.id)
        return [dict(r._mapping) for r in conn.execute(query)]


def timers_of(run_id: str) -> list[dict[str, Any]]:
    return rows(timer_t, run_id)


def waits_of(run_id: str) -> list[dict[str, Any]]:
    return rows(wait_t, run_id)


def signals_of(run_id: str) -> list[dict[str, Any]]:
    return rows(signal_t, run_id)


def publications(run_id: str) -> list[tuple[int, str, str | None]]:
    return [(r["publication"], r["kind"], r["resume"]) for r in rows(outbox_t, run_id)]


def far_future() -> datetime:
    return datetime(2100, 1, 1, tzinfo=UTC)
