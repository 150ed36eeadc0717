"""``campaignflow deadletters list|show|replay|purge``: messages the workers could not process."""

from __future__ import annotations

from enum import StrEnum

import typer

from orchestration.cli.common import (
    JSON_OPTION,
    USAGE_EXIT,
    fail,
    number_column,
    parse_duration,
    print_json,
    print_table,
    status_text,
)
from orchestration.cli.purge import DRY_RUN_OPTION, print_purge
from orchestration.timefmt import iso_utc

deadletters_app = typer.Typer(
    help="Dead letters: messages the workers could not process, kept as received.", no_args_is_help=True
)


class LetterStatus(StrEnum):
    """What ``deadletters list --status`` shows."""

    DEAD = "dead"
    REPLAYED = "replayed"
    ALL = "all"


@deadletters_app.command("list")
def list_cmd(
    status: LetterStatus = typer.Option(LetterStatus.DEAD, help="dead (not replayed), replayed, or all."),
    queue: str | None = typer.Option(None, "--queue", help="Only this queue's."),
    limit: int = typer.Option(50, min=1, max=10_000),
    as_json: bool = JSON_OPTION,
) -> None:
    """The most recently seen dead letters first, with the reason and how often each was seen."""
    from orchestration.control.deadletters import list_dead_letters

    rows = list_dead_letters(None if status is LetterStatus.ALL else str(status), queue, limit)
    if as_json:
        print_json([r.as_dict() for r in rows])
        return
    print_table(
        [number_column("id"), "queue", "task", "reason", number_column("seen"), "last seen", "status"],
        [[r.id, r.queue, r.task or "-", r.reason, r.count, r.last_seen, status_text(r.status)] for r in rows],
    )


@deadletters_app.command("show")
def show(dead_letter_id: int, as_json: bool = JSON_OPTION) -> None:
    """One dead letter: the reason with its fix, the headers and the body as received."""
    from orchestration.control.deadletters import get_dead_letter

    letter = get_dead_letter(dead_letter_id)
    if as_json:
        print_json(letter.as_dict())
        return
    typer.echo(
        f"dead letter {letter.id}  queue {letter.queue}  task {letter.task or '-'}  status {letter.status}"
        f"  seen {letter.count}x  first {iso_utc(letter.first_seen)}  last {iso_utc(letter.last_seen)}"
    )
    typer.echo(f"reason: {letter.reason}: {letter.detail}")
    typer.echo(
        f"content: {letter.content_type or '-'} ({letter.content_encoding or '-'}), {letter.body_size} bytes"
    )
    typer.echo(f"headers: {letter.headers}")
    text = letter.body_text()
    shown = ascii(text)[1:-1] if text is not None else f"(not UTF-8) {(letter.body or b'').hex()}"
    cut = "" if letter.body_complete else f"  [first {len(letter.body or b'')} bytes kept]"
    typer.echo(f"body: {shown[:4000]}{' …' if len(shown) > 4000 else ''}{cut}")


@deadletters_app.command("replay")
def replay(dead_letter_id: int, as_json: bool = JSON_OPTION) -> None:
    """Publish a dead letter again to its queue, once its task is deployed and its body decodes."""
    from orchestration.control.deadletters import replay as do_replay

    letter = do_replay(dead_letter_id)
    if as_json:
        print_json({"id": letter.id, "queue": letter.queue, "task": letter.task, "status": letter.status})
    else:
        typer.echo(f"dead letter {letter.id} replayed to queue {letter.queue} (task {letter.task})")


@deadletters_app.command("purge")
def purge(
    older_than: str | None = typer.Option(
        None, "--older-than", help="Only those last seen longer ago than this: 90s, 15m, 12h, 30d, 2w."
    ),
    purge_all: bool = typer.Option(False, "--all", help="Every dead letter, however recent."),
    status: list[LetterStatus] | None = typer.Option(
        None, "--status", help="Only dead (not replayed) or replayed ones (repeat for both; default: all)."
    ),
    dry_run: bool = DRY_RUN_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Delete dead letters, a batch at a time: those last seen before --older-than, or --all."""
    from orchestration.control.retention import purge_dead_letters

    if (older_than is None) == (not purge_all):
        fail("give --older-than DURATION (e.g. 30d) or --all", USAGE_EXIT)
    age = None if older_than is None else parse_duration(older_than, "--older-than")
    wanted = [str(s) for s in status or () if s is not LetterStatus.ALL]
    report = purge_dead_letters(age, wanted or None, dry_run=dry_run)
    print_purge(report, "dead letters", "last seen", as_json)
