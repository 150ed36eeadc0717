"""``campaignflow rejected list|show|replay``: events that could not become runs, kept for a fix."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

import typer

from orchestration.cli.common import (
    JSON_OPTION,
    fail,
    id_column,
    number_column,
    parse_duration,
    print_json,
    print_table,
    read_json,
    status_text,
)
from orchestration.cli.purge import DRY_RUN_OPTION, OLDER_THAN_HELP, print_purge
from orchestration.timefmt import iso_utc


class RejectedStatus(StrEnum):
    """What ``rejected list --status`` shows."""

    REJECTED = "rejected"
    REPLAYED = "replayed"
    ALL = "all"


rejected_app = typer.Typer(
    help="Rejected events: list them, replay one after a fix, purge old ones.", no_args_is_help=True
)


@rejected_app.command("list")
def list_cmd(
    status: RejectedStatus = typer.Option(
        RejectedStatus.REJECTED, help="rejected (still open), replayed, or all."
    ),
    limit: int = typer.Option(50, min=1, max=10_000),
    as_json: bool = JSON_OPTION,
) -> None:
    """The newest rejected events first, with the reason."""
    from orchestration.control.rejected import list_rejected

    rows = list_rejected(None if status is RejectedStatus.ALL else str(status), limit)
    if as_json:
        print_json([r.as_dict() for r in rows])
        return
    print_table(
        [number_column("id"), id_column("event"), "status", "created", "reason"],
        [[r.id, r.event_id or "-", status_text(r.status), r.created_at, r.reason] for r in rows],
    )


@rejected_app.command("show")
def show(rejected_id: int, as_json: bool = JSON_OPTION) -> None:
    """One rejected event: every problem and the raw body as received."""
    from orchestration.control.rejected import get_rejected

    row = get_rejected(rejected_id)
    if as_json:
        print_json(row.as_dict())
        return
    typer.echo(
        f"rejected event {row.id}  event {row.event_id or '-'}  status {row.status}"
        f"  created {iso_utc(row.created_at)}"
        + (f"  replayed {iso_utc(row.replayed_at)} as run {row.replay_run_id}" if row.replayed_at else "")
    )
    for problem in row.problems:
        typer.echo(f"  - {problem}")
    typer.echo(
        json.dumps(row.raw, indent=2) if row.raw_complete else f"{row.raw} … [only this part was kept]"
    )


@rejected_app.command("replay")
def replay(
    rejected_id: int,
    event: Path | None = typer.Option(None, "--event", help="A JSON file with the corrected event."),
    sync: bool = typer.Option(False, "--sync", help="Run in this process instead of on the workers."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Ingest a rejected event again (after adding a route, or with a corrected body via --event)."""
    from orchestration.control.manager import manager
    from orchestration.control.rejected import replay as do_replay

    body = None
    if event is not None:
        body = read_json(event, f"--event {event}")
        if not isinstance(body, dict):
            fail(f"--event {event}: must hold one JSON object (id, type, payload)", kind="invalid_input")
    handle = do_replay(rejected_id, event=body, mode="inline" if sync else "async", manager=manager())
    if as_json:
        print_json({"rejected_id": rejected_id, **handle.as_dict()})
    else:
        dup = " (duplicate)" if handle.duplicate else ""
        typer.echo(f"rejected event {rejected_id} replayed: run {handle.run_id} {handle.status}{dup}")


@rejected_app.command("purge")
def purge(
    older_than: str = typer.Option(..., "--older-than", help=OLDER_THAN_HELP),
    status: list[RejectedStatus] | None = typer.Option(
        None, "--status", help="Only rejected (still open) or replayed ones (repeat for both; default: all)."
    ),
    dry_run: bool = DRY_RUN_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Delete rejected events received before --older-than, a batch at a time."""
    from orchestration.control.retention import purge_rejected

    age = parse_duration(older_than, "--older-than")
    wanted = [str(s) for s in status or () if s is not RejectedStatus.ALL]
    print_purge(purge_rejected(age, wanted or None, dry_run=dry_run), "rejected events", "received", as_json)
