"""``campaignflow suppression list|add|remove``: the addresses that are never sent to."""

from __future__ import annotations

from enum import StrEnum

import typer

from orchestration.cli.common import JSON_OPTION, print_json, print_table

suppression_app = typer.Typer(
    help="The suppression list: unsubscribed, hard-bounced and complained addresses are never sent to.",
    no_args_is_help=True,
)


class Reason(StrEnum):
    """Why an address is suppressed (``orchestration.store.guard_models.SUPPRESSION_REASONS``)."""

    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    MANUAL = "manual"


@suppression_app.command("list")
def list_cmd(
    reason: Reason | None = typer.Option(None, "--reason", help="Only addresses suppressed for this reason."),
    limit: int = typer.Option(100, min=1, max=100_000),
    as_json: bool = JSON_OPTION,
) -> None:
    """The suppressed addresses, newest first, with why and from where."""
    from orchestration.control.suppression import list_entries

    rows = list_entries(reason=str(reason) if reason else None, limit=limit)
    if as_json:
        print_json(rows)
        return
    print_table(
        ["address", "reason", "source", "since", "detail"],
        [[r["address"], r["reason"], r["source"], r["created_at"], r["detail"] or ""] for r in rows],
    )


@suppression_app.command("add")
def add_cmd(
    address: str,
    reason: Reason = typer.Option(Reason.MANUAL, "--reason", help="Why it is suppressed."),
    detail: str | None = typer.Option(None, "--detail", help="A note kept in the list's log."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Suppress an address (no message is sent to it from now on); logged, source `cli`."""
    from orchestration.control.suppression import add

    entry = add(address, reason=str(reason), source="cli", detail=detail)
    if as_json:
        print_json(entry)
    elif entry["added"]:
        typer.echo(f"{entry['address']} suppressed ({entry['reason']})")
    else:
        typer.echo(f"{entry['address']} was already suppressed ({entry['reason']}, from {entry['source']})")


@suppression_app.command("remove")
def remove_cmd(
    address: str,
    detail: str | None = typer.Option(None, "--detail", help="Why, kept in the list's log."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Take an address off the list (it may be sent to again); logged, source `cli`."""
    from orchestration.control.suppression import remove

    entry = remove(address, source="cli", detail=detail)
    if as_json:
        print_json({**entry, "removed": True})
    else:
        typer.echo(f"{entry['address']} removed from the suppression list (was {entry['reason']})")
