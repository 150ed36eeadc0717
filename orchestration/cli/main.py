"""``campaignflow``: every command; errors print one clear line and exit non-zero (2 for a usage
error, 1 for any other failure; see ``orchestration.cli.errors``)."""

from __future__ import annotations

import typer

import orchestration
from orchestration.cli import worker as worker_cmds
from orchestration.cli.api import api
from orchestration.cli.bench import bench
from orchestration.cli.campaigns import campaigns_app, routes_app
from orchestration.cli.compose import compose_app
from orchestration.cli.db import db_app
from orchestration.cli.deadletters import deadletters_app
from orchestration.cli.demo import demo
from orchestration.cli.doctor import doctor
from orchestration.cli.errors import CampaignflowGroup
from orchestration.cli.flower import flower
from orchestration.cli.flows import flows_app
from orchestration.cli.limits import limits
from orchestration.cli.metrics import metrics_app
from orchestration.cli.rejected import rejected_app
from orchestration.cli.runs import ingest, runs_app

cli = typer.Typer(
    cls=CampaignflowGroup,
    name="campaignflow",
    help="Multi-step agent workflows on Celery: ingest events, run flows, inspect envelopes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
#: Commands that wire the process themselves (the demo runs embedded, whatever the environment says;
#: the bench in its sandbox).
SELF_WIRED = frozenset({"demo", "bench"})


def _version(value: bool) -> None:
    if value:
        typer.echo(f"campaignflow {orchestration.__version__}")
        raise typer.Exit()


@cli.callback()
def wire(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    traceback: bool = typer.Option(
        False, "--traceback", help="On an unexpected error, show its traceback (for a bug report)."
    ),
) -> None:
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
cli.add_typer(deadletters_app, name="deadletters")
cli.add_typer(compose_app, name="compose")
cli.command("ingest")(ingest)
cli.command("worker")(worker_cmds.worker)
cli.command("beat")(worker_cmds.beat)
cli.command("bench")(bench)
cli.command("flower")(flower)
cli.command("api")(api)
cli.add_typer(metrics_app, name="metrics")
cli.command("demo")(demo)
cli.command("doctor")(doctor)
cli.command("limits")(limits)


def main() -> None:
    cli(prog_name="campaignflow")


if __name__ == "__main__":
    main()
