"""``campaignflow``: every command; errors print one clear line and exit non-zero."""

from __future__ import annotations

import sys

import typer

from orchestration.cli import worker as worker_cmds
from orchestration.cli.bench import bench
from orchestration.cli.campaigns import campaigns_app, routes_app
from orchestration.cli.compose import compose_app
from orchestration.cli.db import db_app
from orchestration.cli.demo import demo
from orchestration.cli.doctor import doctor
from orchestration.cli.flower import flower
from orchestration.cli.flows import flows_app
from orchestration.cli.metrics import metrics_app
from orchestration.cli.rejected import rejected_app
from orchestration.cli.runs import ingest, runs_app

cli = typer.Typer(
    name="campaignflow",
    help="Multi-step agent workflows on Celery: ingest events, run flows, inspect envelopes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
#: Commands that wire the process themselves (the demo runs embedded, whatever the environment says).
SELF_WIRED = frozenset({"demo"})


@cli.callback()
def wire(ctx: typer.Context) -> None:
    """Multi-step agent workflows on Celery: ingest events, run flows, inspect envelopes."""
    if ctx.invoked_subcommand not in SELF_WIRED and not ctx.resilient_parsing:
        from orchestration.bootstrap import bootstrap

        bootstrap()


cli.add_typer(runs_app, name="runs")
cli.add_typer(flows_app, name="flows")
cli.add_typer(db_app, name="db")
cli.add_typer(campaigns_app, name="campaigns")
cli.add_typer(routes_app, name="routes")
cli.add_typer(rejected_app, name="rejected")
cli.add_typer(compose_app, name="compose")
cli.command("ingest")(ingest)
cli.command("worker")(worker_cmds.worker)
cli.command("beat")(worker_cmds.beat)
cli.command("bench")(bench)
cli.command("flower")(flower)
cli.add_typer(metrics_app, name="metrics")
cli.command("demo")(demo)
cli.command("doctor")(doctor)


def main() -> None:
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from orchestration.errors import CampaignflowError

    try:
        cli()
    except CampaignflowError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except (OperationalError, ProgrammingError) as exc:
        typer.echo(
            f"error: run store not usable ({exc.orig}); check CAMPAIGNFLOW_DATABASE_URL and run "
            "`campaignflow db upgrade`",
            err=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
