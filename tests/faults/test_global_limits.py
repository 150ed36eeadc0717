"""Cluster-wide limits across real ``celery worker`` processes: four prefork workers (one pool child
each) serve the isolated queue, the permits live in the session's Redis, and the test agent records
when each try started and ended (``tests.support.agents.limited``).

The agent is declared ``global_concurrency=3, global_rate_limit="20/s"``; steps override it with
``limits:`` (per-key limits, a concurrency of one for the priority and crash cases).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from orchestration.engine.permits import Permits, permits
from orchestration.orchestrators.base import FlowRunner
from orchestration.store import sql_engine
from tests.support.agents import ISOLATED_QUEUE, LIMITED_AGENT, ledger
from tests.support.flows import flow, run
from tests.support.runs import envelope, wait_for_run
from tests.support.wait import eventually
from tests.support.wiring import engine
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.crash

WORKERS = 4
#: Leases of the workers' permits (seconds): a killed worker's come back this soon.
LEASE = 2.0


@pytest.fixture(scope="module")
def pool(
    celery_worker_session: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[WorkerProcess]]:
    log_dir = tmp_path_factory.mktemp("limits")
    procs = [WorkerProcess(f"limited{i}", [ISOLATED_QUEUE], log_dir=log_dir) for i in range(WORKERS)]
    for proc in procs:
        proc.start(CAMPAIGNFLOW_LIMIT_LEASE_SECONDS=str(LEASE))
    try:
        for proc in procs:
            proc.wait_ready()
        yield procs
    finally:
        for proc in procs:
            proc.kill()


def spans(tag: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in ledger().lrange(f"limited:{tag}", 0, -1)]


def peak(items: list[dict[str, Any]]) -> int:
    """The most tries that ran at once."""
    events = sorted([(s["s"], 1) for s in items] + [(s["e"], -1) for s in items])
    running = top = 0
    for _t, delta in events:
        running += delta
        top = max(top, running)
    return top


def busiest_second(starts: list[float]) -> int:
    """The most tries that started within any one second (a window starting at each start)."""
    starts = sorted(starts)
    return max(sum(1 for t in starts[i:] if t < s + 1.0) for i, s in enumerate(starts))


def throttled_records(run_id: str) -> list[float]:
    with sql_engine().connect() as conn:
        rows = conn.execute(
            sa.text("SELECT throttled_seconds FROM step_record WHERE run_id = :r"), {"r": run_id}
        ).all()
    return [float(r[0]) for r in rows]


def step(tag: str, sleep: float, limits: dict[str, Any] | None = None, **inp: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"id": "hit", "agent": LIMITED_AGENT, "input": {"tag": tag, "sleep": sleep, **inp}}
    if limits is not None:
        node["limits"] = limits
    return node


def holder() -> Permits:
    found = permits()
    assert found is not None
    return found[0]


def test_four_workers_hold_an_agent_to_three_at_once_and_twenty_a_second(
    worker: object, pool: list[WorkerProcess]
) -> None:
    # Given 240 steps published at once (a map), on 4 worker processes
    tag, n = uuid.uuid4().hex, 240
    f = flow(
        [
            {
                "kind": "map",
                "id": "m",
                "over": "$payload.items",
                "concurrency": 1000,
                "do": step("$payload.tag", 0.02),
            }
        ]
    )
    # When they run under the agent's limits (3 at once, 20/s)
    env = run(f, {"items": list(range(n)), "tag": tag}, timeout=120)

    # Then each ran once, never more than 3 at once nor 20 in a second, and the limit was used
    assert env.status == "succeeded", pool[0].log()
    got = spans(tag)
    assert len(got) == n
    assert peak(got) <= 3
    assert busiest_second([s["granted"] for s in got]) <= 20  # the permits: Redis's clock
    starts = sorted(s["s"] for s in got)
    throughput = (n - 1) / (starts[-1] - starts[0])
    use = [u for u in holder().usage() if u.agent == LIMITED_AGENT and u.key == ""]
    assert throughput >= 0.9 * 20, f"{throughput:.1f} steps/s; {use}"
    waited = throttled_records(env.run_id)
    assert any(w > 0 for w in waited)  # refused steps waited, and their records say how long
    # no throttled put-back counted as a try
    assert all(r.attempts == 1 for r in env.records if r.step_id.startswith("m["))


def test_a_per_key_limit_holds_each_key_while_the_others_run(
    worker: object, pool: list[WorkerProcess]
) -> None:
    tag = uuid.uuid4().hex
    items = [{"tenant": f"t{k}"} for k in range(10) for _ in range(4)]
    limits = {"global_concurrency": 1, "limit_key": "$input.tenant|lower"}
    f = flow(
        [
            {
                "kind": "map",
                "id": "m",
                "over": "$payload.items",
                "concurrency": 1000,
                "do": step("$payload.tag", 0.1, limits, tenant="$item.tenant"),
            }
        ]
    )
    env = run(f, {"items": items, "tag": tag}, timeout=120)

    assert env.status == "succeeded", pool[0].log()
    got = spans(tag)
    assert len(got) == len(items)
    per_key = {k: [s for s in got if s["key"] == k] for k in {s["key"] for s in got}}
    assert len(per_key) == 10
    assert all(peak(v) == 1 for v in per_key.values())  # each key: one at a time
    assert peak(got) >= 2  # while other keys ran beside it


def test_a_high_priority_step_gets_the_next_permit_before_waiting_low_ones(
    worker: object, pool: list[WorkerProcess]
) -> None:
    # Given one permit (a concurrency of one on this key), held by a long low-priority step
    tag, tenant = uuid.uuid4().hex, uuid.uuid4().hex[:8]
    limits = {"global_concurrency": 1, "limit_key": "$payload.tenant"}
    runner = FlowRunner(engine(), flow([step(tag, 0.05, limits)]))
    first = FlowRunner(engine(), flow([step(tag, 2.0, limits)])).run({"tenant": tenant}, mode="async")
    eventually(lambda: ledger().exists(f"limited-pid:{tag}:hit"), 30, "the first step to start")
    # When low-priority steps wait for it, then high-priority ones
    low = [runner.run({"tenant": tenant, "n": i}, mode="async").run_id for i in range(4)]
    eventually(lambda: waiting(tenant) >= 4, 30, "the low-priority steps to wait")
    high = [runner.run({"tenant": tenant, "n": i}, mode="async", priority=9).run_id for i in range(3)]
    eventually(lambda: waiting(tenant) >= 7, 30, "the high-priority steps to wait")

    # Then every high-priority step started before any of the waiting low-priority ones
    for run_id in [first.run_id, *low, *high]:
        assert wait_for_run(run_id, 60).status == "succeeded"
    started = {run_id: _started(run_id) for run_id in [*low, *high]}
    assert max(started[r] for r in high) < min(started[r] for r in low)


def test_with_a_saturated_pool_high_priority_steps_are_taken_before_queued_low_ones(
    worker: object, pool: list[WorkerProcess]
) -> None:
    # Given every worker busy (one long step each, on keys of their own)
    tag = uuid.uuid4().hex
    limits = {"global_concurrency": 100, "limit_key": "$payload.tenant"}
    blockers = FlowRunner(engine(), flow([step(tag, 1.5, limits)]))
    busy = [blockers.run({"tenant": f"b{i}-{tag}"}, mode="async").run_id for i in range(WORKERS)]
    eventually(lambda: _running(busy) == WORKERS, 30, "every worker to be busy")
    # When low-priority steps are queued, then high-priority ones (each on a key of its own)
    short = FlowRunner(engine(), flow([step(tag, 0.01, limits)]))
    low = [short.run({"tenant": f"l{i}-{tag}"}, mode="async").run_id for i in range(4)]
    high = [short.run({"tenant": f"h{i}-{tag}"}, mode="async", priority=9).run_id for i in range(4)]

    # Then the workers take every high-priority step first
    for run_id in [*busy, *low, *high]:
        assert wait_for_run(run_id, 60).status == "succeeded"
    started = {run_id: _started(run_id) for run_id in [*low, *high]}
    assert max(started[r] for r in high) < min(started[r] for r in low)


def test_a_killed_worker_returns_its_permits_within_the_lease_and_nothing_deadlocks(
    worker: object, pool: list[WorkerProcess]
) -> None:
    # Given a step holding the only permit of its key, on some worker
    tag, tenant = uuid.uuid4().hex, uuid.uuid4().hex[:8]
    limits = {"global_concurrency": 1, "limit_key": "$payload.tenant"}
    long = FlowRunner(engine(), flow([step(tag, 3.0, limits)])).run({"tenant": tenant}, mode="async")
    found: Any = eventually(lambda: ledger().get(f"limited-pid:{tag}:hit"), 30, "the step to start")
    pid = int(found)
    victim = next(p for p in pool if p.proc is not None and os.getpgid(pid) == p.proc.pid)
    leases = holder().keys(LIMITED_AGENT, tenant)["leases"]
    assert holder().client.zcard(leases) == 1

    # When its worker is SIGKILLed, and another step of the key comes
    victim.kill()
    clock: Any = holder().client.time()
    now = int(clock[0]) + int(clock[1]) / 1e6
    held: Any = holder().client.zrange(leases, 0, -1, withscores=True)
    ((_member, expires),) = held
    assert expires / 1e6 <= now + LEASE  # the dead holder's lease is not renewed past the lease time
    other = FlowRunner(engine(), flow([step(tag, 0.05, limits)])).run({"tenant": tenant}, mode="async")

    # Then the permit comes back by itself, the next step takes it, and both runs end
    eventually(
        lambda: holder().client.zcard(leases) == 0 or _started_or_none(other.run_id), 30, "the lease to end"
    )
    assert wait_for_run(other.run_id, 60).status == "succeeded"
    assert wait_for_run(long.run_id, 60).status == "succeeded"  # redelivered to a live worker
    victim.start(CAMPAIGNFLOW_LIMIT_LEASE_SECONDS=str(LEASE))
    victim.wait_ready()


def waiting(tenant: str) -> int:
    k = holder().keys(LIMITED_AGENT, tenant)
    return int(holder().client.zcard(k["waiting"]))


def _running(run_ids: list[str]) -> int:
    return sum(1 for r in run_ids if any(rec.status == "running" for rec in envelope(r).records))


def _started(run_id: str) -> float:
    rec = envelope(run_id).records[0]
    assert rec.started_at is not None
    return rec.started_at.timestamp()


def _started_or_none(run_id: str) -> bool:
    recs = envelope(run_id).records
    return bool(recs) and recs[0].started_at is not None
