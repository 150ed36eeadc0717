"""``campaignflow bench``: campaignflow against plain Celery doing the same shapes of work.

Both sides run on the same broker and the same workers in one invocation. campaignflow records
every step in the store; plain Celery runs the same canvas of no-op tasks with no store.

The bench never touches production: it runs in a sandbox (:func:`enter_sandbox`) on the same
servers, with a store of its own (the Postgres schema ``<schema>_bench``, ``campaignflow_bench``
when the URL sets none, or a ``*_bench.db`` SQLite file beside the configured one) and a Redis key
prefix of its own (``<prefix>bench:``), so its runs, run counters, queues, results and step metrics
stay apart from the deployment's. ``campaignflow worker --bench`` serves the same sandbox for
``campaignflow bench --external``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from celery import chain, chord, group
from celery.exceptions import TimeoutError

from orchestration.bootstrap import bootstrap
from orchestration.errors import ConfigurationError
from orchestration.flows import Flow, parse_flow
from orchestration.names import BENCH_PLAIN_TASK, agent_queue
from orchestration.orchestrators.base import FlowRunner
from orchestration.runtime import Runtime, current
from orchestration.settings import Settings, get_settings
from orchestration.store import schemas, sql_engine, stats

#: The keys of ``campaignflow bench --json``, one object per shape.
JSON_KEYS = (
    "shape",
    "n",
    "campaignflow_flows_per_s",
    "plain_flows_per_s",
    "ratio",
    "p50_first_step_ms",
    "p99_first_step_ms",
)
NOOP_QUEUE = agent_queue("utility")
Progress = Callable[[int], None]

#: The sandbox's store: this suffix on the configured schema (or SQLite file name).
SANDBOX_SUFFIX = "_bench"
#: The sandbox's schema when the configured URL sets none (the tables are then in ``public``).
SANDBOX_SCHEMA = "campaignflow_bench"
#: The sandbox's Redis keys: after the configured key prefix, if any.
SANDBOX_KEY_PREFIX = "bench:"


def sandbox_settings(settings: Settings) -> Settings:
    """``settings`` with the bench's own store and Redis key prefix (same servers)."""
    url = schemas.beside(settings.effective_database_url(), SANDBOX_SUFFIX, SANDBOX_SCHEMA)
    prefix = f"{settings.redis_key_prefix or ''}{SANDBOX_KEY_PREFIX}"
    return settings.model_copy(update={"database_url": url, "redis_key_prefix": prefix})


def sandbox_environment(settings: Settings) -> dict[str, str]:
    """What a child process needs in its environment to use the same store and keys as ``settings``
    (``campaignflow api`` in ``bench --api``, started after :func:`enter_sandbox`)."""
    env = {"CAMPAIGNFLOW_DATABASE_URL": settings.effective_database_url()}
    if settings.redis_key_prefix:
        env["CAMPAIGNFLOW_REDIS_KEY_PREFIX"] = settings.redis_key_prefix
    return env


def enter_sandbox(settings: Settings | None = None) -> Runtime:
    """Wire this process into the bench's sandbox: its store created and migrated if needed, then
    a runtime whose app, workers and store use only the sandbox. For ``campaignflow bench`` and
    ``campaignflow worker --bench``, processes that do nothing else."""
    sandbox = sandbox_settings(settings or get_settings())
    schemas.prepare(sandbox.effective_database_url())
    return bootstrap(settings=sandbox)


def check_worker_events(task_events: bool) -> None:
    """With ``--external``, both sides run on the bench workers: they must send task events (and
    task-sent) as this bench does, or the comparison is not the one asked for. Workers that do not
    answer are not checked."""
    replies = current().app.control.inspect(timeout=2.0).conf(with_defaults=True) or {}
    wrong = sorted(
        name
        for name, conf in replies.items()
        if (bool(conf.get("worker_send_task_events")), bool(conf.get("task_send_sent_event")))
        != (task_events, task_events)
    )
    if wrong:
        want = "on" if task_events else "off"
        raise ConfigurationError(
            f"task events are {want} for this bench, but not on the bench workers {', '.join(wrong)}: "
            f"start them with CAMPAIGNFLOW_TASK_EVENTS={want} (or run the bench with "
            f"--task-events {'off' if task_events else 'on'})"
        )


@dataclass(frozen=True)
class ShapeResult:
    shape: str
    n: int
    steps_per_flow: int
    campaignflow_flows_per_s: float
    plain_flows_per_s: float
    ratio: float
    p50_first_step_ms: float
    p99_first_step_ms: float
    plain_p50_first_step_ms: float
    campaignflow_cpu_ms_per_flow: float
    plain_cpu_ms_per_flow: float
    rounds: int

    @property
    def campaignflow_steps_per_s(self) -> float:
        return self.campaignflow_flows_per_s * self.steps_per_flow

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, Any]:
        """The documented ``bench --json`` object of one shape."""
        return {k: v for k, v in self.as_dict().items() if k in JSON_KEYS}


def bench_flow(shape: str) -> Flow:
    if shape == "sequence":
        steps: list[dict[str, Any]] = [{"id": f"s{i}", "agent": "noop"} for i in range(5)]
    else:
        steps = [
            {
                "kind": "parallel",
                "id": "join",
                "members": [{"id": f"p{i}", "agent": "noop"} for i in range(5)],
            }
        ]
    return parse_flow({"name": f"bench-{shape}", "steps": steps}, current().registry)


def plain_canvas(shape: str) -> Any:
    task = current().app.signature(BENCH_PLAIN_TASK, immutable=True, queue=NOOP_QUEUE)
    if shape == "sequence":
        return chain(*(task.clone() for _ in range(5)))
    return chord(
        group(task.clone() for _ in range(5)), current().app.signature(BENCH_PLAIN_TASK, immutable=True)
    )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _count_done(run_ids: list[str]) -> int:
    with sql_engine().connect() as conn:
        return stats.count_finished(conn, run_ids)


def run_campaignflow(
    shape: str, n: int, progress: Progress, *, burst: bool = True
) -> tuple[float, list[float]]:
    """N flows, all submitted at once (``burst``) or one after the other; flows/s and first-step ms."""
    flow = bench_flow(shape)
    runner = FlowRunner(current().engine, flow)
    submitted: dict[str, float] = {}
    start = time.perf_counter()
    for _ in range(n):
        t0 = time.time()
        run_id = runner.run({}, mode="async").run_id
        submitted[run_id] = t0
        while not burst and not _count_done([run_id]):
            time.sleep(0.002)
    done = 0
    while done < n:
        time.sleep(0.05)
        now_done = _count_done(list(submitted))
        progress(now_done - done)
        done = now_done
    elapsed = time.perf_counter() - start
    first = _first_step_starts(list(submitted), flow)
    latencies = [(first[r] - t0) * 1000 for r, t0 in submitted.items() if r in first]
    return n / elapsed, latencies


def _first_step_starts(run_ids: list[str], flow: Flow) -> dict[str, float]:
    first_ids = ["s0"] if flow.name.endswith("sequence") else [f"p{i}" for i in range(5)]
    with sql_engine().connect() as conn:
        starts = stats.first_step_starts(conn, run_ids, first_ids)
    return {run_id: at.timestamp() for run_id, at in starts.items()}


def _wait(result: Any, *, interval: float, timeout: float = 120.0) -> None:
    """Wait for a plain flow's last result: pub/sub first, then the stored state, which also finds
    a result whose notification this process missed."""
    try:
        result.get(timeout=min(timeout, 15.0), interval=interval)
        return
    except TimeoutError:
        pass
    deadline = time.monotonic() + timeout
    while current().app.backend.get_task_meta(result.id)["status"] != "SUCCESS":
        if time.monotonic() > deadline:
            raise TimeoutError(f"plain flow {result.id} did not finish in {timeout}s")
        time.sleep(0.05)


def run_plain(shape: str, n: int, progress: Progress, *, burst: bool = True) -> tuple[float, list[float]]:
    pending: list[tuple[float, Any, Any]] = []
    start = time.perf_counter()
    for _ in range(n):
        canvas = plain_canvas(shape)
        canvas.freeze()
        t0 = time.time()
        first = canvas.tasks[0] if shape == "sequence" else canvas.tasks.tasks[0]
        pending.append((t0, canvas.apply_async(), first))
        if not burst:
            _wait(pending[-1][1], interval=0.002)
    latencies = []
    for _t0, result, _first in pending:
        _wait(result, interval=0.005)
        progress(1)
    elapsed = time.perf_counter() - start
    for t0, _result, first in pending:
        latencies.append((current().app.AsyncResult(first.id).get(timeout=30) - t0) * 1000)
    return n / elapsed, latencies


def _timed(side: Callable[..., tuple[float, list[float]]], *args: Any) -> tuple[float, float]:
    """One burst: its flows/s and this process's CPU seconds (all threads: the in-process worker's
    too; with ``--external`` workers, only the submitting)."""
    cpu = time.process_time()
    rate, _ = side(*args)
    return rate, time.process_time() - cpu


def bench_shape(
    shape: str, n: int, progress: Progress, *, latency_samples: int = 50, rounds: int = 3
) -> ShapeResult:
    """Throughput from bursts of N flows, in ``rounds`` rounds that alternate which side goes first
    (the median round of each side counts); latency from flows sent one at a time (an idle system)."""
    run_campaignflow(shape, min(10, n), lambda _: None)  # warm up caches and connections
    run_plain(shape, min(10, n), lambda _: None)
    cf: list[tuple[float, float]] = []
    plain: list[tuple[float, float]] = []
    for r in range(rounds):
        order = [(plain, run_plain), (cf, run_campaignflow)]
        for results, side in order if r % 2 == 0 else reversed(order):
            results.append(_timed(side, shape, n, progress))
    _, plain_lat = run_plain(shape, latency_samples, lambda _: None, burst=False)
    _, cf_lat = run_campaignflow(shape, latency_samples, lambda _: None, burst=False)
    cf_rate, cf_cpu = statistics.median_low(cf)
    plain_rate, plain_cpu = statistics.median_low(plain)
    return ShapeResult(
        shape=shape,
        n=n,
        steps_per_flow=5 if shape == "sequence" else 6,
        campaignflow_flows_per_s=round(cf_rate, 1),
        plain_flows_per_s=round(plain_rate, 1),
        ratio=round(cf_rate / plain_rate, 3),
        p50_first_step_ms=round(statistics.median(cf_lat), 1),
        p99_first_step_ms=round(percentile(cf_lat, 0.99), 1),
        plain_p50_first_step_ms=round(statistics.median(plain_lat), 1),
        campaignflow_cpu_ms_per_flow=round(1000 * cf_cpu / n, 2),
        plain_cpu_ms_per_flow=round(1000 * plain_cpu / n, 2),
        rounds=rounds,
    )
