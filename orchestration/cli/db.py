"""``campaignflow db upgrade|downgrade|current``."""

from __future__ import annotations

import typer

from orchestration.cli.common import JSON_OPTION, print_json

db_app = typer.Typer(help="Migrate the run store (Alembic).", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from orchestration.store import migrate

    migrate.upgrade(revision=revision)
    typer.echo(f"database at {', '.join(migrate.current()) or 'base'}")


@db_app.command("downgrade")
def downgrade(revision: str = typer.Argument(...)) -> None:
    """Revert migrations down to REVISION (``base`` drops everything)."""
    from orchestration.store import migrate

    migrate.downgrade(revision=revision)
    typer.echo(f"database at {', '.join(migrate.current()) or 'base'}")


@db_app.command("current")
def current(as_json: bool = JSON_OPTION) -> None:
    """Show the applied revision and whether it is the head."""
    from orchestration.store import migrate

    cur, heads, at_head = list(migrate.current()), list(migrate.heads()), migrate.at_head()
    if as_json:
        print_json({"current": cur, "heads": heads, "at_head": at_head})
    else:
        typer.echo(f"current {', '.join(cur) or 'base'}; head {', '.join(heads)}")
    if not at_head:
        raise typer.Exit(1)
