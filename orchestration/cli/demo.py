"""``campaignflow demo``: the lead-handling campaign on sample events, end to end, in one process.

No Redis, no Postgres: real Celery messages go through the in-process broker to worker threads, and
the runs land in a SQLite file built by the Alembic migrations.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import typer

from orchestration.cli.common import JSON_OPTION, print_json


def demo(
    events: Path | None = typer.Option(
        None, "--events", help="A JSON event file or a directory of them. Default: examples/events."
    ),
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        help="Where the SQLite store goes (default: CAMPAIGNFLOW_DATA_DIR).",
    ),
    fresh: bool = typer.Option(False, "--fresh", help="Use a new temporary data dir, removed at the end."),
    timeout: float = typer.Option(25.0, min=1, help="Seconds to wait for the runs to end."),
    concurrency: int = typer.Option(2, "-c", "--concurrency", min=1, max=16, help="Worker threads."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Run the lead-handling campaign on sample events through real Celery machinery, in-process."""
    from orchestration.ops import embedded
    from orchestration.settings import get_settings

    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="campaignflow-demo-")) if fresh else None
    try:
        _runtime, ignored = embedded.use_embedded(tmp or data_dir or get_settings().data_dir)
        report = _run(embedded, events or embedded.default_events_dir(), timeout, concurrency)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    report["ignored_settings"] = ignored
    report["elapsed_seconds"] = round(time.perf_counter() - started, 3)
    _print(report, as_json)
    if any(env["status"] != "succeeded" for env in report["runs"]):
        raise typer.Exit(1)


def _run(embedded: Any, events_path: Path, timeout: float, concurrency: int) -> dict[str, Any]:
    from orchestration.control.manager import manager
    from orchestration.flows.graph import to_mermaid
    from orchestration.runtime import current
    from orchestration.settings import get_settings
    from orchestration.store import migrate

    url = get_settings().effective_database_url()
    migrate.upgrade(url)
    raw = embedded.load_events(events_path)
    # a token per demo, so a kept data dir gets new runs instead of the previous demo's duplicates
    token = uuid.uuid4().hex[:8]
    batch = [{**e, "id": f"{e.get('id', 'event')}-{token}"} for e in raw]
    with embedded.embedded_worker(concurrency=concurrency):
        handles = [manager().ingest_event(e, mode="async") for e in batch]
        envelopes = embedded.wait_terminal([h.run_id for h in handles], timeout)
        again = manager().ingest_event(batch[0], mode="async") if batch else None
    names = sorted({env.flow for env in envelopes})
    return {
        "database_url": url,
        "runs": [env.model_dump(mode="json") for env in envelopes],
        "graphs": {name: to_mermaid(current().flows.get(name)) for name in names},
        "duplicate": None if again is None else {"event_id": batch[0]["id"], **again.as_dict()},
        "rows": {t: embedded.count_rows(t) for t in ("crm_contact", "delivery")},
    }


def _print(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(report)
        return
    from orchestration.cli.runs import render_envelope
    from orchestration.envelope import Envelope

    if report["ignored_settings"]:
        typer.echo(f"note: the demo runs embedded; ignoring {', '.join(report['ignored_settings'])}")
    typer.echo(f"embedded: in-process broker, worker threads, run store {report['database_url']}\n")
    for data in report["runs"]:
        typer.echo(render_envelope(Envelope.model_validate(data)) + "\n")
    for name, graph in report["graphs"].items():
        typer.echo(f"flow {name} (Mermaid):\n{graph}")
    statuses = [r["status"] for r in report["runs"]]
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses))) or "none"
    typer.echo(f"runs: {len(statuses)} ({counts})")
    dup = report["duplicate"]
    if dup:
        same = "the same run" if dup["duplicate"] else "a NEW run"
        typer.echo(f"ingesting event {dup['event_id']} again: {same} {dup['run_id']} ({dup['status']})")
    rows = ", ".join(f"{t} {n}" for t, n in report["rows"].items() if n is not None)
    typer.echo(f"rows: {rows}")
    typer.echo(f"elapsed: {report['elapsed_seconds']:.2f} s")
