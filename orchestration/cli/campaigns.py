"""``campaignflow campaigns add|list|pause|resume|tick`` and ``campaignflow routes list|add|remove``.

Both live in the database: a change takes effect at the next tick or ingest, without a restart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml

from orchestration.cli.common import (
    JSON_OPTION,
    decode_text,
    fail,
    id_column,
    parse_json,
    print_json,
    print_table,
    read_bytes,
    read_json,
    status_text,
)
from orchestration.cli.errors import one_line

campaigns_app = typer.Typer(help="Beat-scheduled campaigns (kept in the database).", no_args_is_help=True)
routes_app = typer.Typer(help="Routing rules: event type (and campaign) -> orchestrator or flow.")


def _json_option(value: str | None, flag: str) -> Any:
    if value is None:
        return None
    if value.startswith("@"):
        return read_json(value[1:], f"{flag} {value}")
    return parse_json(value, flag)


def _specs_from_file(path: Path) -> list[dict[str, Any]]:
    label = f"--file {path}"
    text = decode_text(read_bytes(path, label), label)
    try:
        data = parse_json(text, label) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as exc:
        fail(f"{label}: not valid YAML ({one_line(str(exc))}); correct it", kind="invalid_input")
    items = data.get("campaigns", [data]) if isinstance(data, dict) else data
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        fail(f"--file {path}: expected one campaign mapping or a list of them")
    return list(items)


@campaigns_app.command("add")
def add(
    name: str | None = typer.Argument(None, help="Campaign name (or give --file)."),
    event_type: str | None = typer.Option(None, "--event-type", help="Type of the events it sends."),
    every: float | None = typer.Option(None, "--every", help="Interval schedule, in seconds."),
    cron: str | None = typer.Option(None, "--cron", help="Cron schedule: 'min hour dom month dow'."),
    timezone: str = typer.Option("UTC", "--timezone", help="IANA zone for --cron."),
    payload: str | None = typer.Option(None, "--payload", help="Payload template: JSON or @file.json."),
    audience: str | None = typer.Option(None, "--audience", help="JSON list or @file.json: one run each."),
    max_catchup: int = typer.Option(3, "--max-catchup", min=1, help="Missed slots started after downtime."),
    paused: bool = typer.Option(False, "--paused", help="Add it disabled."),
    file: Path | None = typer.Option(None, "--file", help="YAML/JSON file: one campaign or a list."),
    replace: bool = typer.Option(False, "--replace", help="Update a campaign of the same name."),
) -> None:
    """Add a campaign from flags or from a YAML/JSON file; the next tick schedules it."""
    from pydantic import ValidationError

    from orchestration.control.campaigns import CampaignSpec, add_campaign
    from orchestration.errors import FieldError
    from orchestration.flows.validate import format_loc

    if file is not None:
        raw_specs = _specs_from_file(file)
    elif name is not None:
        raw: dict[str, Any] = {"name": name, "event_type": event_type, "every_seconds": every, "cron": cron}
        raw.update(timezone=timezone, max_catchup=max_catchup, enabled=not paused)
        raw.update(
            payload=_json_option(payload, "--payload") or {}, audience=_json_option(audience, "--audience")
        )
        raw_specs = [raw]
    else:
        fail("give a NAME with --event-type and --every/--cron, or --file FILE")
    for raw_spec in raw_specs:
        try:
            spec = CampaignSpec.model_validate(raw_spec)
        except ValidationError as exc:
            problems = [f"{format_loc(e['loc']) or 'campaign'}: {e['msg']}" for e in exc.errors()]
            raise FieldError(problems, subject=f"campaign {raw_spec.get('name')!r}") from None
        campaign_id = add_campaign(spec, replace=replace)
        typer.echo(
            f"campaign {spec.name} saved (id {campaign_id}, {'enabled' if spec.enabled else 'paused'})"
        )


@campaigns_app.command("list")
def list_cmd(as_json: bool = JSON_OPTION) -> None:
    """Every campaign, its schedule and its last started slot."""
    from orchestration.control.campaigns import list_campaigns

    rows = list_campaigns()
    if as_json:
        print_json(rows)
        return
    body = [
        [
            r["name"],
            r["event_type"],
            f"every {r['every_seconds']:g}s"
            if r["schedule_kind"] == "interval"
            else f"cron {r['cron']} {r['timezone']}",
            status_text("enabled" if r["enabled"] else "paused"),
            len(r["audience"]) if r["audience"] is not None else "-",
            r["last_slot_at"] or "-",
        ]
        for r in rows
    ]
    print_table([id_column("name"), "event", "schedule", "state", "audience", "last slot"], body)


@campaigns_app.command("pause")
def pause(name: str) -> None:
    """Stop starting new slots (running runs go on)."""
    from orchestration.control.campaigns import set_enabled

    set_enabled(name, False)
    typer.echo(f"campaign {name} paused")


@campaigns_app.command("resume")
def resume(name: str) -> None:
    """Start slots again from now on (slots that fell while paused are not caught up)."""
    from orchestration.control.campaigns import set_enabled

    set_enabled(name, True)
    typer.echo(f"campaign {name} resumed")


@campaigns_app.command("tick")
def tick_cmd(as_json: bool = JSON_OPTION) -> None:
    """Run one campaign tick now, in this process (what beat's campaignflow.campaign_tick does)."""
    from orchestration.control.ticks import tick

    report = tick().as_dict()
    if as_json:
        print_json(report)
    else:
        typer.echo(f"{report['slots_started']} slots, {report['runs_started']} runs started")


@routes_app.command("list")
def routes_list(as_json: bool = JSON_OPTION) -> None:
    """Every routing rule in precedence order (database, file, built-in)."""
    from orchestration.control.manager import DEFAULT_ROUTES, db_routes, file_routes

    rows = [(r, "database") for r in db_routes()]
    rows += [(r, "file") for r in file_routes()] + [(r, "built-in") for r in DEFAULT_ROUTES]
    if as_json:
        print_json([{**r.model_dump(), "source": src} for r, src in rows])
        return
    body = [[r.id or "-", r.event_type, r.campaign or "*", r.target, src] for r, src in rows]
    print_table(["id", "event type", "campaign", "goes to", "source"], body)


@routes_app.command("add")
def routes_add(
    event_type: str,
    orchestrator: str | None = typer.Option(None, "--orchestrator", help="A registered orchestrator."),
    flow: str | None = typer.Option(None, "--flow", help="A flow of the catalog."),
    campaign: str | None = typer.Option(None, "--campaign", help="Only events of this campaign."),
    resume: str | None = typer.Option(
        None, "--resume", help="Also (or only) resume the runs waiting for this signal..."
    ),
    key: str | None = typer.Option(
        None, "--key", help="...whose wait correlates with this field of the event (payload.email)."
    ),
) -> None:
    """Route an event type to an orchestrator or a flow, and/or let its events resume the runs
    waiting for them (takes effect at the next ingest)."""
    from pydantic import ValidationError

    from orchestration.control.correlate import Resume
    from orchestration.control.manager import Route, add_route
    from orchestration.flows.validate import format_loc

    if (resume is None) != (key is None):
        fail("--resume and --key go together: --resume replied --key payload.email")
    try:
        waits = Resume(signal=resume, key=key) if resume is not None and key is not None else None
        route = Route(
            event_type=event_type, orchestrator=orchestrator, flow=flow, campaign=campaign, resume=waits
        )
    except ValidationError as exc:
        fail(
            "; ".join(
                f"{format_loc(e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
            )
            + " (--orchestrator/--flow/--resume/--key)"
        )
    saved = add_route(route)
    typer.echo(f"route {saved.id}: {saved.event_type} -> {saved.target}")


@routes_app.command("remove")
def routes_remove(route_id: int) -> None:
    """Remove a database routing rule by its id."""
    from orchestration.control.manager import remove_route

    remove_route(route_id)
    typer.echo(f"route {route_id} removed")
