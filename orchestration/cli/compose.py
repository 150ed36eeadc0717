"""``campaignflow compose render``: compose.yaml from the registry (pools, queues, concurrency)."""

from __future__ import annotations

import difflib
from pathlib import Path

import typer

from orchestration.cli.common import fail
from orchestration.runtime import current

compose_app = typer.Typer(help="The docker compose file of a deployment.", no_args_is_help=True)


@compose_app.command("render")
def render(
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here instead of stdout."),
    check: Path | None = typer.Option(
        None, "--check", help="Compare with this file instead; exit 1 and print a diff when it differs."
    ),
) -> None:
    """Render compose.yaml: a worker service per agent pool, orchestration, beat, Flower, API, migrate."""
    from orchestration.ops.compose import render as render_compose

    text = render_compose(current().registry)
    if check is not None:
        on_disk = check.read_text(encoding="utf-8") if check.exists() else ""
        if on_disk != text:
            diff = difflib.unified_diff(
                on_disk.splitlines(keepends=True), text.splitlines(keepends=True), str(check), "rendered"
            )
            typer.echo("".join(diff), err=True)
            fail(f"{check} is not what the registry renders; run `campaignflow compose render -o {check}`")
        typer.echo(f"{check}: up to date")
    elif output is not None:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}")
    else:
        typer.echo(text, nl=False)
