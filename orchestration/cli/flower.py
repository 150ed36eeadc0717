"""``campaignflow flower``: Flower 2.2 for our app, with basic auth from the settings."""

from __future__ import annotations

import typer

from orchestration.cli.common import fail
from orchestration.ops import flower as flower_plan
from orchestration.runtime import current


def flower(
    port: int = typer.Option(flower_plan.DEFAULT_PORT, "--port", help="HTTP port."),
    address: str = typer.Option(
        flower_plan.DEFAULT_ADDRESS, "--address", help="Interface to listen on; keep it internal."
    ),
    max_tasks: int = typer.Option(
        flower_plan.DEFAULT_MAX_TASKS, "--max-tasks", "--max_tasks", help="Tasks Flower keeps in memory."
    ),
    purge_offline_workers: int = typer.Option(
        flower_plan.DEFAULT_PURGE_OFFLINE,
        "--purge-offline-workers",
        "--purge_offline_workers",
        help="Seconds after which offline workers leave the dashboard and the metrics.",
    ),
    allow_control: bool = typer.Option(
        False, "--allow-control", help="Let users revoke tasks, resize pools, send tasks (not read-only)."
    ),
    no_auth: bool = typer.Option(
        False, "--no-auth", help="Start without authentication on purpose (read-only, JSON API closed)."
    ),
) -> None:
    """Start Flower (events on, bounded history, read-only by default) with basic auth from
    CAMPAIGNFLOW_FLOWER_BASIC_AUTH (user:password)."""
    from orchestration.errors import ConfigurationError
    from orchestration.settings import export_environment, get_settings

    try:
        chosen = flower_plan.plan(
            get_settings().flower_basic_auth,
            port=port,
            address=address,
            max_tasks=max_tasks,
            purge_offline_workers=purge_offline_workers,
            allow_control=allow_control,
            no_auth=no_auth,
        )
    except ConfigurationError as exc:
        fail(str(exc), code=2)
        return
    export_environment(chosen.env, chosen.unset)
    mode = "basic auth" if chosen.authenticated else "NO AUTH"
    access = "read-only" if chosen.read_only else "control allowed"
    typer.echo(f"flower: http://{address}:{port} ({mode}, {access})", err=True)

    app = current().app

    app.start(chosen.argv)
