"""``campaignflow runs list|show|retry|cancel`` and ``campaignflow ingest``."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import typer

from orchestration.cli.common import (
    FAILURE_EXIT,
    JSON_OPTION,
    echo,
    error,
    fail,
    id_column,
    number_column,
    parse_duration,
    parse_json,
    print_json,
    print_table,
    read_json,
    status_text,
    table,
)
from orchestration.cli.purge import DRY_RUN_OPTION, OLDER_THAN_HELP, print_purge
from orchestration.envelope import Envelope
from orchestration.names import TERMINAL_RUN_STATUSES, RunStatus
from orchestration.store import repository as repo
from orchestration.store import sql_engine
from orchestration.timefmt import as_utc, iso_utc

if TYPE_CHECKING:
    from rich.console import RenderableType

runs_app = typer.Typer(help="Inspect and control runs.", no_args_is_help=True)

#: What ``--since`` accepts: a date, or a datetime with or without fraction and offset (``Z`` too),
#: so a timestamp campaignflow printed can be pasted back.
SINCE = [
    "%Y-%m-%d",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S.%f%z",
    "%Y-%m-%d %H:%M:%S",
]


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, default=str) if value is not None else ""
    return text if len(text) <= width else text[: width - 1] + "…"


def render_envelope(env: Envelope) -> RenderableType:
    """The envelope for people: a head (run, flow, status, times, error) over one row per step
    (its input, its output or error)."""
    from rich.console import Group
    from rich.text import Text

    meta = env.metadata
    duration = (
        f"{(meta.finished_at - meta.started_at).total_seconds() * 1000:.0f} ms"
        if meta.started_at and meta.finished_at
        else "-"
    )
    head = [
        Text.assemble(
            f"run {env.run_id}  flow {env.flow} v{meta.flow_version}  status ",
            status_text(env.status.upper()),
            f"  {duration}",
        ),
        Text(
            f"event {meta.event_id or '-'}  campaign {meta.campaign or '-'}"
            f"  orchestrator {meta.orchestrator or '-'}  mode {meta.mode}"
        ),
        Text(
            f"created {iso_utc(meta.created_at)}  started {iso_utc(meta.started_at) or '-'}"
            f"  finished {iso_utc(meta.finished_at) or '-'}"
        ),
    ]
    if meta.error:
        head.append(Text(f"error: {meta.error.type}: {meta.error.message}", style="red"))
    rows = []
    for r in env.records:
        took = (
            f"{(r.finished_at - r.started_at).total_seconds() * 1000:.0f}"
            if r.started_at and r.finished_at
            else ""
        )
        detail = f"{r.error.type}: {r.error.message}" if r.error else _short(r.output)
        given = _short(r.input, 40)
        rows.append([r.step_id, r.agent or "", status_text(r.status), r.attempts, took, given, detail])
    steps = table(
        ["step", "agent", "status", number_column("tries"), number_column("ms"), "input", "output / error"],
        rows,
    )
    return Group(*head, Text(""), steps)


def load_envelope(run_id: str) -> Envelope:
    with sql_engine().connect() as conn:
        return repo.get_envelope(conn, run_id)


@runs_app.command("show")
def show(run_id: str, as_json: bool = JSON_OPTION) -> None:
    """Print a run's envelope: metadata and one record per step."""
    env = load_envelope(run_id)
    if as_json:
        print_json(env.model_dump(mode="json"))
    else:
        echo(render_envelope(env))


@runs_app.command("list")
def list_runs(
    status: RunStatus | None = typer.Option(None, help="Only runs in this status."),
    flow: str | None = typer.Option(None),
    campaign: str | None = typer.Option(None),
    since: datetime | None = typer.Option(
        None, help="ISO date or datetime, UTC unless it has an offset (2026-12-01T09:30:00Z).", formats=SINCE
    ),
    limit: int = typer.Option(50, min=1, max=10_000),
    as_json: bool = JSON_OPTION,
) -> None:
    """The newest runs first."""
    with sql_engine().connect() as conn:
        runs = repo.list_runs(
            conn,
            status=status,
            flow=flow,
            campaign=campaign,
            since=as_utc(since) if since else None,
            limit=limit,
        )
    if as_json:
        print_json([r.__dict__ for r in runs])
        return
    rows = [[r.run_id, r.flow, status_text(r.status), r.campaign, r.event_id, r.created_at] for r in runs]
    print_table([id_column("run_id"), "flow", "status", "campaign", "event", "created"], rows)


@runs_app.command("cancel")
def cancel(run_id: str, as_json: bool = JSON_OPTION) -> None:
    """Cancel a queued, running or waiting run."""
    from orchestration.control.run_control import cancel_run

    status = cancel_run(run_id)
    print_json({"run_id": run_id, "status": status}) if as_json else typer.echo(f"{run_id} {status}")


@runs_app.command("retry")
def retry(
    run_id: str,
    patch: str | None = typer.Option(
        None, "--patch", help="JSON merge patch for the stored payload (inline or @file.json)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Re-drive a failed run from its failed step (succeeded steps are not run again)."""
    from orchestration.control.run_control import retry_run

    status = retry_run(run_id, _patch(patch))
    print_json({"run_id": run_id, "status": status}) if as_json else typer.echo(f"{run_id} {status}")


@runs_app.command("signal")
def signal(
    run_id: str,
    name: str = typer.Argument(..., help="The signal the run's wait is waiting for (e.g. replied)."),
    data: str | None = typer.Option(None, "--data", help="The signal's data: JSON (inline or @file.json)."),
    signal_id: str | None = typer.Option(
        None, "--signal-id", help="An id of your own: the same id twice is one signal."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Send a signal to a run: it resumes the wait for NAME (kept until the wait starts)."""
    from orchestration.control.signals import signal_run

    value = None
    if data is not None:
        value = read_json(data[1:], f"--data {data}") if data.startswith("@") else parse_json(data, "--data")
    _print_signal(signal_run(run_id, name, value, signal_id).as_dict(), as_json)


@runs_app.command("approve")
def approve(
    run_id: str,
    by: str | None = typer.Option(None, "--by", help="Who approves."),
    comment: str | None = typer.Option(None, "--comment", help="Why, or anything to keep with it."),
    signal_id: str | None = typer.Option(
        None, "--signal-id", help="An id of your own: the same id twice is one approval."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Approve a run waiting for approval (the signal ``approval`` with ``{"by", "comment"}``)."""
    from orchestration.control.signals import approve as approve_run

    _print_signal(approve_run(run_id, by, comment, signal_id).as_dict(), as_json)


def _print_signal(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(result)
        return
    what = "duplicate, ignored" if result["duplicate"] else "resumed the run" if result["resumed"] else "kept"
    typer.echo(f"{result['run_id']} {result['signal']} {what} ({result['status']})")


class FinishedStatus(StrEnum):
    """What ``runs purge --status`` takes: the terminal statuses only (a live run is never purged)."""

    SUCCEEDED = RunStatus.SUCCEEDED.value
    FAILED = RunStatus.FAILED.value
    CANCELLED = RunStatus.CANCELLED.value


@runs_app.command("purge")
def purge(
    older_than: str = typer.Option(
        ..., "--older-than", help=OLDER_THAN_HELP + " Counted from when a run ended."
    ),
    status: list[FinishedStatus] | None = typer.Option(
        None, "--status", help="Only runs that ended so (repeat for more; default: every finished run)."
    ),
    dry_run: bool = DRY_RUN_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Delete finished runs, with their step records, that ended before --older-than; a batch at a
    time. Queued and running runs are never deleted; the run counters keep counting them."""
    from orchestration.control.retention import purge_runs

    age = parse_duration(older_than, "--older-than")
    report = purge_runs(age, [str(s) for s in status or ()] or None, dry_run=dry_run)
    print_purge(report, "runs", "that ended", as_json)


def _patch(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    data = read_json(value[1:], f"--patch {value}") if value.startswith("@") else parse_json(value, "--patch")
    if not isinstance(data, dict):
        fail("--patch: must be a JSON object (merged into the stored payload; null removes a key)")
    return dict(data)


def ingest(
    source: str = typer.Argument(..., help="A JSON file with one event (or a list), or - for stdin."),
    sync: bool = typer.Option(False, "--sync", help="Run in this process instead of on the workers."),
    wait: bool = typer.Option(False, "--wait", help="Wait for async runs to end."),
    timeout: float = typer.Option(60.0, min=0, help="Seconds to wait with --wait."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Ingest events: validate, route, open a run per event and start it.

    Exits 1 when an event is rejected, or a run failed or was cancelled, or (with --wait) did not
    end within --timeout; each such problem is one line on stderr (with --json, in the results).
    A run the broker cannot take yet is stored and published when the broker answers: its line
    says "publication pending", and the exit code is 0.
    """
    data = read_json(source)
    events = data if isinstance(data, list) else [data]
    with _quiet(PUBLISH_LOGGER):  # a pending publication is said on the run's own line
        results = [_ingest_one(e, sync=sync, wait=wait, timeout=timeout) for e in events]
    if as_json:
        print_json(results if isinstance(data, list) else results[0])
    else:
        for r in results:
            if r["run_id"] is not None:
                typer.echo(f"{r['run_id']} {r['status']}{_notes(r)}")
        for r in results:
            if r["error"]:
                error(r["error"])
    if any(r["error"] for r in results):
        raise typer.Exit(FAILURE_EXIT)


#: The logger of the fast path's "publication pending" warning.
PUBLISH_LOGGER = "orchestration.engine.publish"


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Keep the records of logger ``name`` off stderr while the command reports them itself."""
    logger = logging.getLogger(name)
    handler, propagate = logging.NullHandler(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _notes(result: dict[str, Any]) -> str:
    """What the run's line adds after its status: duplicate, publication pending."""
    if result["duplicate"] and result.get("publication_pending"):
        return " (duplicate, publication pending: the run starts when the broker answers)"
    if result["duplicate"]:
        return " (duplicate)"
    if result.get("publication_pending"):
        return " (publication pending: the broker is not reachable; the run starts when it answers)"
    return ""


def _ingest_one(event: Any, *, sync: bool, wait: bool, timeout: float) -> dict[str, Any]:
    """One event's result: ``run_id``, ``status``, ``duplicate`` and ``error`` (None when fine)."""
    from orchestration.control.manager import manager
    from orchestration.control.rejected import EventRejectedError

    try:
        handle = manager().ingest_event(event, mode="inline" if sync else "async")
    except EventRejectedError as exc:
        rejected = {"rejected_id": exc.rejected_id, "reason": exc.kind}
        return {
            "run_id": None,
            "status": "rejected",
            "duplicate": False,
            **rejected,
            "publication_pending": False,
            "error": str(exc),
        }
    status = _wait(handle.run_id, timeout) if wait and not sync else handle.status
    problem = None
    if status in (RunStatus.FAILED, RunStatus.CANCELLED):
        problem = f"run {handle.run_id} {status}; see `campaignflow runs show {handle.run_id}`"
    elif wait and status not in TERMINAL_RUN_STATUSES:
        problem = (
            f"run {handle.run_id} still {status} after {timeout:g}s; wait longer (--timeout) or check "
            "that workers run (`campaignflow doctor`)"
        )
    pending = handle.pending and status == RunStatus.QUEUED
    return {**handle.as_dict(), "status": status, "publication_pending": pending, "error": problem}


def _wait(run_id: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        with sql_engine().connect() as conn:
            status = repo.run_status(conn, run_id)
        if status in TERMINAL_RUN_STATUSES or time.monotonic() > deadline:
            return status
        time.sleep(0.1)
