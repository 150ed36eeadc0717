"""``campaignflow flows list|validate|graph``."""

from __future__ import annotations

from pathlib import Path

import typer

from orchestration.cli.common import JSON_OPTION, print_json, table
from orchestration.runtime import current

flows_app = typer.Typer(help="List, check and draw flows.", no_args_is_help=True)


@flows_app.command("list")
def list_flows(as_json: bool = JSON_OPTION) -> None:
    """The flows campaignflow knows (built-in and from CAMPAIGNFLOW_FLOWS_DIR)."""

    items = [
        {
            "name": f.name,
            "version": f.version,
            "steps": sum(1 for n in f.walk() if n.kind == "step"),
            "description": f.description,
        }
        for f in current().flows
    ]
    if as_json:
        print_json(items)
    else:
        typer.echo(table(["name", "version", "steps", "description"], [list(i.values()) for i in items]))


@flows_app.command("validate")
def validate(files: list[Path] = typer.Argument(..., exists=True, dir_okay=False)) -> None:
    """Check flow files; every problem is printed as ``path: problem (fix)``. Exit 1 on any."""
    from orchestration.errors import FlowValidationError
    from orchestration.flows import load_flow

    registry = current().registry

    bad = 0
    for path in files:
        try:
            flow = load_flow(path, registry)
        except FlowValidationError as exc:
            bad += 1
            typer.echo(f"{path}: invalid", err=True)
            for problem in exc.problems:
                typer.echo(f"  {problem}", err=True)
        else:
            typer.echo(f"{path}: ok ({flow.name} v{flow.version})")
    if bad:
        raise typer.Exit(1)


@flows_app.command("graph")
def graph(
    name: str, file: Path | None = typer.Option(None, "--file", help="Draw a flow file instead.")
) -> None:
    """Print a Mermaid flowchart of a flow."""
    from orchestration.flows import load_flow
    from orchestration.flows.graph import to_mermaid

    typer.echo(to_mermaid(load_flow(file) if file else current().flows.get(name)), nl=False)
