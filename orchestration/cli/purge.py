"""What ``runs purge``, ``rejected purge`` and ``deadletters purge`` share: their options and how
they print what was deleted (``orchestration.control.retention``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from orchestration.cli.common import print_json
from orchestration.timefmt import iso_utc

if TYPE_CHECKING:
    from orchestration.control.retention import PurgeReport

OLDER_THAN_HELP = "Only what is older than this: 90s, 15m, 12h, 30d, 2w."
DRY_RUN_OPTION = typer.Option(False, "--dry-run", help="Count what would be deleted; delete nothing.")


def print_purge(report: PurgeReport, noun: str, age: str, as_json: bool) -> None:
    """``purged 3 runs (12 step records) that ended before ...``; with ``--dry-run``, ``would
    purge ...``; with ``--json``, the report's fields."""
    if as_json:
        print_json(report.as_dict())
        return
    verb = "would purge" if report.dry_run else "purged"
    steps = "" if report.step_records is None else f" ({report.step_records} step records)"
    when = "" if report.before is None else f" {age} before {iso_utc(report.before)}"
    typer.echo(f"{verb} {report.purged} {noun}{steps}{when}")
