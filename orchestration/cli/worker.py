"""``campaignflow worker`` and ``campaignflow beat``: thin wrappers over Celery's own commands that
know the pools, queues and concurrency from the registry. They exit with Celery's exit code: a
worker that stops on an error (``Unrecoverable error``, code 1) exits non-zero, so a restart
policy or a supervisor sees a failure."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

import typer

from orchestration.names import ENGINE_QUEUE, agent_queue
from orchestration.runtime import current

if TYPE_CHECKING:
    from celery import Celery


class PoolImpl(StrEnum):
    """Celery's execution pools that campaignflow runs on (``-P``)."""

    PREFORK = "prefork"
    THREADS = "threads"
    SOLO = "solo"


def worker_argv(
    pool: str | None, all_pools: bool, concurrency: int | None, pool_impl: str, loglevel: str
) -> list[str]:
    from orchestration.errors import UnknownNameError

    registry = current().registry

    pools = registry.pools()
    if all_pools:
        queues = registry.queue_names()
        name, default_c = "all", max(2, min(8, sum(pools.values())))
    elif pool == ENGINE_QUEUE:
        queues, name, default_c = [ENGINE_QUEUE], ENGINE_QUEUE, 4
    elif pool in pools:
        queues, name, default_c = [agent_queue(pool)], pool, pools[pool]
    else:
        raise UnknownNameError("pool", str(pool), [ENGINE_QUEUE, *pools])
    argv = [
        "worker",
        "-Q",
        ",".join(queues),
        "-c",
        str(concurrency or default_c),
        "-P",
        pool_impl,
        "-n",
        f"{name}@%h",
        "-l",
        loglevel,
    ]
    # task events as CAMPAIGNFLOW_TASK_EVENTS says (the app's worker_send_task_events is set from it)
    return [*argv, "-E"] if current().settings.task_events else argv


def worker(
    pool: str | None = typer.Option(None, "--pool", help="Agent pool, or 'orchestration' for engine tasks."),
    all_pools: bool = typer.Option(False, "--all", help="Consume every queue (small deployments, demos)."),
    concurrency: int | None = typer.Option(None, "-c", "--concurrency", help="Default: the pool's setting."),
    pool_impl: PoolImpl = typer.Option(PoolImpl.PREFORK, "-P", "--pool-impl", help="Celery's pool."),
    loglevel: str = typer.Option("INFO", "-l", "--loglevel"),
    bench: bool = typer.Option(
        False, "--bench", help="Serve `campaignflow bench --external`: the bench's own store and keys only."
    ),
) -> None:
    """Start a Celery worker on one pool's queue (or on all of them with --all)."""
    if not pool and not all_pools:
        raise typer.BadParameter("give --pool NAME or --all")
    if bench:
        from orchestration.ops.bench import enter_sandbox

        enter_sandbox()
    app = current().app
    _exit_with(run_celery(app, worker_argv(pool, all_pools, concurrency, str(pool_impl), loglevel)))


def beat(
    schedule: str = typer.Option("celerybeat-schedule", help="Beat's state file (keep it on a volume)."),
    loglevel: str = typer.Option("INFO", "-l", "--loglevel"),
) -> None:
    """Start the one beat of a deployment (sweeper, campaign ticks)."""
    app = current().app

    _exit_with(run_celery(app, ["beat", "-s", schedule, "-l", loglevel]))


def run_celery(app: Celery, argv: list[str]) -> object:
    """Celery's command line on ``app``, as ``app.start(argv)`` runs it, but returning its exit code:
    ``app.start`` drops it (the command returns the code of ``ctx.exit(code)`` when it does not
    exit the process itself), so a worker that stopped on an error would exit 0."""
    from celery.bin.celery import celery as celery_command

    celery_command.params[0].default = app  # the -A option, as app.start sets it
    try:
        return celery_command.main(args=argv, standalone_mode=False)
    finally:
        celery_command.params[0].default = None


def _exit_with(code: object) -> None:
    if isinstance(code, int) and code != 0:
        raise typer.Exit(code)
