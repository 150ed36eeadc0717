"""The run store restarts under load: a private Postgres cluster is stopped hard (``pg_ctl stop -m
immediate``) with runs in flight on real worker subprocesses, stays down, and comes back.

With the default outage budget every run waits the outage out and succeeds, no agent runs twice and
no store retry counts as a try. With a budget shorter than the outage the runs it caught end with a
clear ``StoreUnavailable`` error, never a raw driver error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from orchestration.store import migrate
from tests.support import services
from tests.support.agents import ledger
from tests.support.figures import figure
from tests.support.postgres import PrivatePostgres
from tests.support.wait import eventually
from tests.support.wiring import registry
from tests.support.workers import ROOT, WorkerProcess

pytestmark = pytest.mark.crash

#: Agent steps, a parallel block and its join, a branch, a map and its join.
FLOW: dict[str, Any] = {
    "name": "store-restart",
    "steps": [
        {"id": "first", "agent": "effect"},
        {
            "kind": "parallel",
            "id": "fan",
            "members": [
                {"id": "left", "agent": "effect", "input": {"sleep": "$payload.pause"}},
                {"id": "right", "agent": "sleep", "input": {"seconds": 0.1}},
            ],
        },
        {
            "kind": "branch",
            "id": "route",
            "cases": [
                {
                    "when": {"field": "payload.hot", "op": "eq", "value": True},
                    "then": {"id": "hot", "agent": "effect"},
                }
            ],
            "else": {"id": "cold", "agent": "noop"},
        },
        {"kind": "map", "id": "each", "over": "$payload.items", "do": {"id": "item", "agent": "effect"}},
        {"id": "last", "agent": "effect"},
    ],
}
ITEMS = 2
#: Every SLOW-th run's ``left`` step takes a second inside its agent: the store is stopped during one.
SLOW = 20


def effect_steps(hot: bool) -> list[str]:
    return ["first", "left", *(["hot"] if hot else []), *(f"each[{i}]" for i in range(ITEMS)), "last"]


INGEST = """
    import json, sys
    from orchestration.flows import parse_flow
    from orchestration.orchestrators.base import FlowRunner
    from tests.support.wiring import engine, registry
    flow = parse_flow(json.loads(sys.argv[1]), registry)
    runner = FlowRunner(engine(), flow)
    items = list(range(int(sys.argv[3])))
    slow = int(sys.argv[4])
    payloads = [{"hot": i % 2 == 0, "items": items, "pause": 1.0 if i % slow == slow // 2 else 0.0}
                for i in range(int(sys.argv[2]))]
    ids = [runner.run(payload, mode="async").run_id for payload in payloads]
    print(json.dumps(ids))
"""


class Deployment:
    """Workers on the shared Redis under a key prefix of their own, with the private cluster as
    their run store."""

    def __init__(self, pg: PrivatePostgres, tmp_path: Path, **settings: str) -> None:
        self.pg = pg
        self.prefix = services.new_schema_name("cf_pgrestart") + ":"
        self.env = {
            "CAMPAIGNFLOW_DATABASE_URL": pg.url,
            "CAMPAIGNFLOW_REDIS_KEY_PREFIX": self.prefix,
            # above the longest retry countdown, so a held retry is never restored as a duplicate
            "CAMPAIGNFLOW_VISIBILITY_TIMEOUT": "60",
            **settings,
        }
        self.worker = WorkerProcess("pgrestart", registry.queue_names(), concurrency=4, log_dir=tmp_path)
        self.store = sa.create_engine(pg.url, poolclass=NullPool)

    def start(self) -> None:
        self.worker.start(**self.env)

        def ready() -> bool:
            proc = self.worker.proc
            assert proc is not None
            if proc.poll() is not None:
                pytest.fail(f"worker exited {proc.returncode}:\n{self.worker.log()}")
            assert " ready." in self.worker.log_path.read_text(errors="replace"), "not ready yet"
            return True

        eventually(ready, 60, "the worker to be ready")

    def ingest(self, count: int) -> list[str]:
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                textwrap.dedent(INGEST),
                json.dumps(FLOW),
                str(count),
                str(ITEMS),
                str(SLOW),
            ],
            cwd=ROOT,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        ids: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
        return ids

    def runs(self, ids: list[str]) -> dict[str, tuple[str, dict[str, Any] | None]]:
        with self.store.connect() as conn:
            rows = conn.execute(
                sa.text("select run_id, status, error from run where run_id = any(:ids)"), {"ids": ids}
            ).all()
        return {r.run_id: (r.status, r.error) for r in rows}

    def records(self, ids: list[str]) -> list[Any]:
        with self.store.connect() as conn:
            return list(
                conn.execute(
                    sa.text(
                        "select run_id, step_id, agent, status, attempts, error, attempt_errors "
                        "from step_record where run_id = any(:ids)"
                    ),
                    {"ids": ids},
                ).all()
            )

    def in_slow_agent(self, ids: list[str]) -> str | None:
        """A run whose slow ``left`` step began less than half a second ago: its agent is still
        inside its one-second call, and will return with the store gone."""
        with self.store.connect() as conn:
            found = conn.execute(
                sa.text(
                    "select run_id from step_record where step_id = 'left' and status = 'running' "
                    "and started_at > now() - interval '500 milliseconds' and run_id = any(:ids) limit 1"
                ),
                {"ids": [r for i, r in enumerate(ids) if i % SLOW == SLOW // 2]},
            ).scalar()
        return None if found is None else str(found)

    def wait_terminal(self, ids: list[str], timeout: float) -> dict[str, tuple[str, dict[str, Any] | None]]:
        def all_ended() -> dict[str, tuple[str, dict[str, Any] | None]]:
            try:
                found = self.runs(ids)
            except sa.exc.OperationalError as exc:
                raise AssertionError(f"store not readable yet: {exc.orig}") from exc
            live = [r for r, (status, _e) in found.items() if status in ("queued", "running")]
            counts = Counter(status for status, _e in found.values())
            assert len(found) == len(ids), f"{len(found)} of {len(ids)} runs found"
            assert not live, f"{dict(counts)}; still live: {live[:3]}"
            return found

        return eventually(all_ended, timeout, f"all {len(ids)} runs to end", interval=0.5)

    def outage_retries(self) -> tuple[int, int]:
        """Store retries, and agent outcomes written by a retry (the agent not called again)."""
        log = self.worker.log_path.read_text(errors="replace")
        return log.count("run store unavailable"), log.count("kept while the run store was away")

    def close(self) -> None:
        self.worker.kill()  # its held retries and queues are thrown away with the prefix below
        self.store.dispose()
        services.clear_prefix(self.prefix)


@pytest.fixture
def pg() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres()
    try:
        cluster.start()
        migrate.upgrade(cluster.url)
        yield cluster
    finally:
        cluster.destroy()


def _outage(
    pg: PrivatePostgres, deployment: Deployment, ids: list[str], down: float
) -> tuple[int, str, float]:
    """While a slow agent is inside its call, stop the store hard for ``down`` seconds: the runs
    still live when it stopped, the run of that agent, and the seconds the store was down."""

    def slow_agent() -> str:
        run_id = deployment.in_slow_agent(ids)
        assert run_id, f"no slow agent running yet; worker log:\n{deployment.worker.log()[-1500:]}"
        return run_id

    caught = eventually(slow_agent, 60, "a slow agent to be inside its call")
    live = sum(1 for status, _e in deployment.runs(ids).values() if status in ("queued", "running"))
    stopped = time.monotonic()
    pg.stop_immediately()
    time.sleep(down)  # paces the fault: the store stays down this long
    pg.start()
    return live, caught, time.monotonic() - stopped


def _raw_driver_errors(found: dict[str, tuple[str, dict[str, Any] | None]], records: list[Any]) -> list[str]:
    errors = [json.dumps(e) for _s, e in found.values() if e] + [
        json.dumps([r.error, r.attempt_errors]) for r in records
    ]
    return [e for e in errors if "OperationalError" in e or "InterfaceError" in e]


def test_store_restart_with_200_runs_in_flight_fails_none(pg: PrivatePostgres, tmp_path: Path) -> None:
    deployment = Deployment(pg, tmp_path)
    try:
        deployment.start()
        started = time.monotonic()
        ids = deployment.ingest(200)
        live, caught, down = _outage(pg, deployment, ids, down=30)
        back = time.monotonic()
        found = deployment.wait_terminal(ids, timeout=180)
        recovered = time.monotonic() - back
        records = deployment.records(ids)
        retries, kept = deployment.outage_retries()
    finally:
        deployment.close()

    failed = {r: e for r, (status, e) in found.items() if status != "succeeded"}
    calls = {
        (r, s): int(ledger().get(f"calls:{r}:{s}") or 0)
        for i, r in enumerate(ids)
        for s in effect_steps(hot=i % 2 == 0)
    }
    effects = {r: int(ledger().get(f"effects:{r}") or 0) for r in ids}
    tried = [r for r in records if r.status != "skipped"]
    recounted = [(r.run_id, r.step_id, r.attempts) for r in tried if r.attempts != 1 or r.attempt_errors]
    figure(
        f"store restart: {len(ids)} runs, {live} live when the store stopped, down {down:.1f}s; "
        f"{len(ids) - len(failed)} succeeded, {len(failed)} failed, 0 stuck; all ended {recovered:.1f}s "
        f"after the restart ({time.monotonic() - started:.0f}s in all); {retries} store retries, "
        f"{kept} agent outcomes written by a retry; agent calls per effect step: max {max(calls.values())}"
    )
    assert live >= 100, f"only {live} runs were in flight when the store stopped"
    assert not failed, json.dumps(dict(list(failed.items())[:3]), indent=2)
    assert retries > 0, "no task met the outage"
    assert kept >= 1, "no agent outcome was kept across the outage"
    assert calls[(caught, "left")] == 1, "the agent caught by the outage ran again"
    assert [k for k, n in calls.items() if n != 1] == [], "an agent ran again after its outcome was known"
    assert [r for i, r in enumerate(ids) if effects[r] != len(effect_steps(hot=i % 2 == 0))] == []
    assert recounted == [], "a store retry counted as a try"
    assert _raw_driver_errors(found, records) == []


def test_store_down_past_the_budget_ends_runs_with_store_unavailable(
    pg: PrivatePostgres, tmp_path: Path
) -> None:
    deployment = Deployment(pg, tmp_path, CAMPAIGNFLOW_STORE_OUTAGE_SECONDS="5")
    try:
        deployment.start()
        ids = deployment.ingest(60)
        live, _caught, down = _outage(pg, deployment, ids, down=20)
        found = deployment.wait_terminal(ids, timeout=90)
        records = deployment.records(ids)
    finally:
        deployment.close()

    failed = {r: e for r, (status, e) in found.items() if status == "failed"}
    kinds = sorted({(e or {}).get("type", "?") for e in failed.values()})
    figure(
        f"store down {down:.0f}s past a 5s budget: {len(ids)} runs, {live} live when it stopped; "
        f"{len(ids) - len(failed)} succeeded, {len(failed)} failed ({', '.join(kinds) or 'none'})"
    )
    assert failed, "no run met the outage"
    assert kinds == ["StoreUnavailable"], json.dumps(dict(list(failed.items())[:3]), indent=2)
    assert all("unavailable" in (e or {}).get("message", "") for e in failed.values())
    assert _raw_driver_errors(found, records) == []
