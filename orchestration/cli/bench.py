"""``campaignflow bench``: flows/s and first-step latency, campaignflow against plain Celery."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from enum import StrEnum
from typing import Any

import typer

from orchestration.cli.common import JSON_OPTION, number_column, print_json, print_table
from orchestration.runtime import current

SHAPES = ("sequence", "parallel")
#: Shapes run only when asked for (``--shape limited``).
EXTRA_SHAPES = ("limited",)


class OnOff(StrEnum):
    ON = "on"
    OFF = "off"


@contextmanager
def _worker(concurrency: int) -> Iterator[Any]:
    from celery.contrib.testing.worker import start_worker

    app = current().app
    registry = current().registry

    app.loader.import_default_modules()
    with start_worker(
        app,
        pool="threads",
        concurrency=concurrency,
        queues=registry.queue_names(),
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=30,
    ) as worker:
        yield worker


def bench(
    n: int = typer.Option(200, "-n", min=1, help="Flows per shape and side."),
    shape: list[str] = typer.Option(
        list(SHAPES),
        "--shape",
        help="sequence (5 steps), parallel (5 + join); limited: a cluster-wide limit's cost and hold.",
    ),
    concurrency: int = typer.Option(8, "-c", "--concurrency", help="Threads of the in-process worker."),
    external: bool = typer.Option(
        False,
        "--external",
        help="Use running `campaignflow worker --bench` workers instead of an in-process one.",
    ),
    latency_samples: int = typer.Option(50, "--latency-samples", min=1, help="Flows sent one at a time."),
    rounds: int = typer.Option(
        3, "--rounds", min=1, help="Bursts per side, alternating which side goes first; the median counts."
    ),
    api: bool = typer.Option(
        False, "--api", help="Ingest instead: POST /v1/events against send_task, N events per round."
    ),
    clients: int = typer.Option(8, "--clients", min=1, help="With --api: clients sending at once."),
    held_n: int = typer.Option(
        600, "--held-n", min=2, help="With --shape limited: steps run against the limit (600 at 20/s: 30 s)."
    ),
    limit_rate: str = typer.Option("20/s", "--limit-rate", help="With --shape limited: the rate held."),
    limit_concurrency: int = typer.Option(
        3, "--limit-concurrency", min=1, help="With --shape limited: the concurrency held."
    ),
    task_events: OnOff | None = typer.Option(
        None,
        "--task-events",
        help="Celery task events on both sides (default: CAMPAIGNFLOW_TASK_EVENTS). With --external "
        "the workers must have been started with the same setting.",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Run each shape N times through campaignflow (every step stored) and through plain Celery;
    with --api, ingest N events through the HTTP API and through send_task instead. Either way in a
    sandbox: the bench's own schema and Redis key prefix, never the production tables or metrics."""
    from orchestration.ops.bench import bench_shape, check_worker_events, enter_sandbox
    from orchestration.settings import get_settings

    unknown = sorted(set(shape) - set(SHAPES) - set(EXTRA_SHAPES))
    if unknown:
        known = ", ".join((*SHAPES, *EXTRA_SHAPES))
        raise typer.BadParameter(f"unknown shape {', '.join(unknown)} (shapes: {known})")
    settings = get_settings()
    if task_events is not None:
        settings = settings.model_copy(update={"task_events": task_events is OnOff.ON})
    enter_sandbox(settings)
    if external:
        check_worker_events(settings.task_events)
    if api:
        with nullcontext() if external else _worker(concurrency):
            _bench_api(n, clients, rounds, as_json)
        return
    if "limited" in shape:
        with nullcontext() if external else _worker(concurrency):
            _bench_limited(n, rounds, held_n, limit_rate, limit_concurrency, as_json)
        shape = [s for s in shape if s != "limited"]
        if not shape:
            return
    results = []
    with nullcontext() if external else _worker(concurrency):
        for name in shape:
            # progress goes to stderr: stdout holds the results only (JSON with --json)
            with typer.progressbar(length=2 * n * rounds, label=f"{name:9}", file=sys.stderr) as bar:
                results.append(
                    bench_shape(name, n, bar.update, latency_samples=latency_samples, rounds=rounds)
                )
    if as_json:
        print_json([r.summary() for r in results])
        return
    rows = [
        [
            r.shape,
            r.n,
            r.campaignflow_flows_per_s,
            r.plain_flows_per_s,
            r.ratio,
            round(r.campaignflow_steps_per_s, 1),
            r.p50_first_step_ms,
            r.p99_first_step_ms,
            r.plain_p50_first_step_ms,
            r.campaignflow_cpu_ms_per_flow,
            r.plain_cpu_ms_per_flow,
        ]
        for r in results
    ]
    numbers = [
        "n",
        "cf flows/s",
        "plain flows/s",
        "ratio",
        "cf steps/s",
        "cf p50 first ms",
        "cf p99 first ms",
        "plain p50 first ms",
        "cf cpu ms/flow",
        "plain cpu ms/flow",
    ]
    print_table(["shape", *map(number_column, numbers)], rows)


def _bench_api(n: int, clients: int, rounds: int, as_json: bool) -> None:
    from orchestration.ops.api_bench import bench_api

    with typer.progressbar(length=2 * n * rounds, label="ingest   ", file=sys.stderr) as bar:
        results = bench_api(n, clients, rounds, bar.update)
    if as_json:
        print_json([r.summary() for r in results])
        return
    rows = [[r.side, r.n, r.clients, r.events_per_s, r.p50_ms, r.p99_ms, r.ratio] for r in results]
    numbers = ["n", "clients", "events/s", "p50 ms", "p99 ms", "ratio"]
    print_table(["ingest", *map(number_column, numbers)], rows)


def _bench_limited(n: int, rounds: int, held_n: int, rate: str, concurrency: int, as_json: bool) -> None:
    from orchestration.flows.limits import LimitDecl
    from orchestration.ops.limited_bench import bench_limited

    LimitDecl(global_rate_limit=rate)  # a bad --limit-rate is one error naming the field
    r = bench_limited(n, rounds, held_n=held_n, rate=rate, concurrency=concurrency)
    if as_json:
        print_json([{"shape": "limited", **r.as_dict()}])
        return
    rows = [
        ["unlimited step", r.unlimited_flows_per_s, r.unlimited_cpu_ms_per_step, "-", "-"],
        [
            "limited step (never binds)",
            r.limited_flows_per_s,
            r.limited_cpu_ms_per_step,
            r.added_cpu_ms_per_step,
            "-",
        ],
        ["permit acquire", "-", r.acquire_cpu_ms, "-", r.round_trip_ms],
        ["permit release", "-", r.release_cpu_ms, "-", r.round_trip_ms],
    ]
    print_table(
        ["limited", *map(number_column, ["flows/s", "cpu ms", "added cpu ms", "round trip ms"])], rows
    )
    typer.echo(
        f"held: {r.held_n} steps limited to {r.held_limit} and {r.held_concurrency} at once started at "
        f"{r.held_steps_per_s} steps/s ({100 * r.held_of_limit:.1f}% of the limit); "
        f"{r.round_trips_per_step} Redis round trips per limited step"
    )
