"""``campaignflow bench --shape limited``: what a cluster-wide limit costs a step, and how close to
its limit a limited agent runs.

- **Cost**: one-step flows of the ``noop`` agent, without limits and with a limit that never
  binds (``global_concurrency`` and ``global_rate_limit`` far above the load), in alternating
  rounds; the difference in CPU per flow (this process: the submitting and, unless ``--external``,
  the worker threads) and in flows/s. Beside it, the permit alone: CPU and wall time of one acquire
  and one release, and the Redis round trips a step makes for them.
- **Held**: N one-step flows of ``noop`` limited to ``rate`` and ``concurrency`` (a step's
  ``limits:``), all published at once; the rate the steps started at (from their records, first
  to last start) against the limit.

Runs in the bench's sandbox like the other shapes (``orchestration.ops.bench``).
"""

from __future__ import annotations

import statistics
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from orchestration.engine.permits import Limit, permits
from orchestration.flows import Flow, parse_flow
from orchestration.flows.limits import rate_interval
from orchestration.orchestrators.base import FlowRunner
from orchestration.runtime import current
from orchestration.store import sql_engine, stats

#: A limit far above any load the bench makes: it never refuses, so only its cost shows.
NEVER_BINDS = {"global_concurrency": 100_000, "global_rate_limit": "1000000/s"}


@dataclass(frozen=True)
class LimitedResult:
    n: int
    rounds: int
    unlimited_flows_per_s: float
    limited_flows_per_s: float
    unlimited_cpu_ms_per_step: float
    limited_cpu_ms_per_step: float
    added_cpu_ms_per_step: float
    acquire_cpu_ms: float
    release_cpu_ms: float
    round_trip_ms: float
    round_trips_per_step: int
    held_n: int
    held_limit: str
    held_concurrency: int
    held_steps_per_s: float
    held_of_limit: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def one_step(limits: dict[str, Any] | None, name: str) -> Flow:
    step: dict[str, Any] = {"id": "s0", "agent": "noop"}
    if limits is not None:
        step["limits"] = limits
    return parse_flow({"name": name, "steps": [step]}, current().registry)


def _run(flow: Flow, n: int) -> tuple[float, float, list[str]]:
    """N flows at once; flows/s and CPU seconds of this process, and their run ids."""
    runner = FlowRunner(current().engine, flow)
    cpu, start = time.process_time(), time.perf_counter()
    run_ids = [runner.run({}, mode="async").run_id for _ in range(n)]
    while True:
        with sql_engine().connect() as conn:
            if stats.count_finished(conn, run_ids) >= n:
                break
        time.sleep(0.05)
    return n / (time.perf_counter() - start), time.process_time() - cpu, run_ids


def permit_cost(samples: int = 2000) -> tuple[float, float, float]:
    """CPU ms of one acquire and of one release (this process, redis-py and the script call), and
    the wall ms of one round trip, on the configured Redis."""
    found = permits()
    if found is None:
        raise RuntimeError("the limits need a Redis broker")
    holder = found[0]
    limit = Limit("bench", uuid.uuid4().hex, 100_000, None)
    acquire = release = 0.0
    wall = time.perf_counter()
    for i in range(samples):
        t = time.process_time()
        holder.acquire(limit, f"bench:{i}")
        acquire += time.process_time() - t
        t = time.process_time()
        holder.release(limit, f"bench:{i}")
        release += time.process_time() - t
    wall = time.perf_counter() - wall
    return 1000 * acquire / samples, 1000 * release / samples, 1000 * wall / (2 * samples)


def held(n: int, rate: str, concurrency: int) -> float:
    """Steps/s the limited flows started at, first to last start."""
    flow = one_step({"global_concurrency": concurrency, "global_rate_limit": rate}, "bench-held")
    _rate, _cpu, run_ids = _run(flow, n)
    with sql_engine().connect() as conn:
        starts = sorted(at.timestamp() for at in stats.first_step_starts(conn, run_ids, ["s0"]).values())
    return (len(starts) - 1) / (starts[-1] - starts[0]) if len(starts) > 1 else 0.0


def bench_limited(n: int, rounds: int, *, held_n: int, rate: str, concurrency: int) -> LimitedResult:
    plain_flow, limited_flow = one_step(None, "bench-unlimited"), one_step(NEVER_BINDS, "bench-limited")
    _run(plain_flow, min(10, n))  # warm up
    _run(limited_flow, min(10, n))
    plain: list[tuple[float, float]] = []
    limited: list[tuple[float, float]] = []
    for r in range(rounds):
        order = [(plain, plain_flow), (limited, limited_flow)]
        for results, flow in order if r % 2 == 0 else reversed(order):
            flows_per_s, cpu, _ids = _run(flow, n)
            results.append((flows_per_s, cpu))
    p_rate, p_cpu = statistics.median_low(plain)
    l_rate, l_cpu = statistics.median_low(limited)
    acquire, release, trip = permit_cost()
    achieved = held(held_n, rate, concurrency)
    return LimitedResult(
        n=n,
        rounds=rounds,
        unlimited_flows_per_s=round(p_rate, 1),
        limited_flows_per_s=round(l_rate, 1),
        unlimited_cpu_ms_per_step=round(1000 * p_cpu / n, 3),
        limited_cpu_ms_per_step=round(1000 * l_cpu / n, 3),
        added_cpu_ms_per_step=round(1000 * (l_cpu - p_cpu) / n, 3),
        acquire_cpu_ms=round(acquire, 3),
        release_cpu_ms=round(release, 3),
        round_trip_ms=round(trip, 3),
        round_trips_per_step=2,  # acquire; release (a rate-only limit has none to release)
        held_n=held_n,
        held_limit=rate,
        held_concurrency=concurrency,
        held_steps_per_s=round(achieved, 2),
        held_of_limit=round(achieved * rate_interval(rate), 3),
    )
