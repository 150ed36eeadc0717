"""``campaignflow doctor``: broker, run store, migrations, queue consumers, beat and the outbox, in one
table."""

from __future__ import annotations

import typer

from orchestration.cli.common import JSON_OPTION, echo, print_json, print_table, status_text


def doctor(
    timeout: float = typer.Option(2.0, min=0.1, help="Seconds to wait for the broker and the workers."),
    require_beat: bool = typer.Option(
        False, "--require-beat", help="A missing or stale beat tick is a failure, not a warning."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Check that this deployment can run flows. Exit 1 when any check FAILs."""
    from orchestration.ops.doctor import run_checks

    checks = run_checks(timeout=timeout, require_beat=require_beat)
    failed = [c.name for c in checks if c.status == "FAIL"]
    if as_json:
        print_json({"ok": not failed, "checks": [c.as_dict() for c in checks]})
    else:
        from rich.text import Text

        rows = [[c.name, status_text(c.status), c.detail] for c in checks]
        print_table(["check", "status", "detail"], rows)
        typer.echo("")
        echo(
            Text(f"FAILED: {', '.join(failed)}", style="bold red")
            if failed
            else Text("all checks passed", style="green")
        )
    if failed:
        raise typer.Exit(1)
