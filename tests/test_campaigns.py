"""Campaigns: due-slot computation (interval and cron, bounded catch-up), the tick's once-per-slot
guarantee under concurrent and late ticks, pause/resume, the heartbeat, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from typer.testing import CliRunner

from orchestration.cli.main import cli
from orchestration.control.campaigns import (
    CampaignSpec,
    add_campaign,
    cron_slots,
    interval_slots,
    set_enabled,
)
from orchestration.control.manager import Route, add_route, manager
from orchestration.control.rejected import list_rejected
from orchestration.control.ticks import TickReport, _claim_due_slots, slot_events, tick
from orchestration.store import sql_engine
from orchestration.store.repository import utcnow
from tests.support.runs import wait_for_run
from tests.support.threads import release_result_backend
from tests.support.wiring import flows

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]


def test_interval_slots_are_bounded_by_catchup() -> None:
    every = timedelta(seconds=10)
    now = T0 + timedelta(seconds=35)
    assert interval_slots(T0, every, None, now, 3) == ([T0 + every * k for k in (1, 2, 3)], 1)
    assert interval_slots(T0, every, None, now, 10) == ([T0 + every * k for k in range(4)], 0)
    assert interval_slots(T0, every, T0 + every * 2, now, 3) == ([T0 + every * 3], 0)
    assert interval_slots(T0, every, T0 + every * 3, now, 3) == ([], 0)  # a late or repeated tick
    assert interval_slots(T0, every, None, T0 - every, 3) == ([], 0)  # before the start


def test_cron_slots_in_the_campaign_time_zone_across_dst() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    after = datetime(2026, 3, 27, 17, 10, tzinfo=berlin)  # Friday, CET (UTC+1)
    now = datetime(2026, 3, 30, 9, 20, tzinfo=berlin)  # Monday, CEST (UTC+2) after the switch
    slots, skipped = cron_slots("*/15 9-17 * * mon-fri", "Europe/Berlin", after, now, 3)
    assert slots == [
        datetime(2026, 3, 27, 16, 45, tzinfo=UTC),
        datetime(2026, 3, 30, 7, 0, tzinfo=UTC),
        datetime(2026, 3, 30, 7, 15, tzinfo=UTC),
    ]
    assert skipped == 1
    assert cron_slots("0 9 1 1 *", "UTC", after, now, 3) == ([], 0)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"every_seconds": 5, "cron": "* * * * *"}, "exactly one schedule"),
        ({}, "exactly one schedule"),
        ({"cron": "61 * * * *"}, "cron: Invalid end range"),
        ({"cron": "* * *"}, "needs 5 fields"),
        ({"every": 5, "timezone": "Mars/Base"}, "unknown time zone 'Mars/Base'"),
        ({"every": 0}, "greater than 0"),
    ],
)
def test_campaign_spec_errors_name_the_problem(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CampaignSpec.model_validate({"name": "c", "event_type": "campaign.ping", **raw})


@pytest.fixture
def ping_route(worker: object) -> None:
    flows().add({"name": "campaign-noop", "steps": [{"id": "a", "agent": "noop"}]})
    add_route(Route(event_type="campaign.ping", flow="campaign-noop"))


def spec(name: str = "weekly", **extra: object) -> CampaignSpec:
    return CampaignSpec.model_validate(
        {
            "name": name,
            "event_type": "campaign.ping",
            "every": 60,
            "starts_at": T0,
            "payload": {"offer": "spring"},
            "audience": [{"email": "a@x.co"}, "b@x.co"],
            **extra,
        }
    )


def runs_by_event() -> dict[str, str]:
    with sql_engine().connect() as conn:
        rows = conn.execute(sa.text("select event_id, run_id from run order by event_id")).all()
    return {r.event_id: r.run_id for r in rows}


def test_tick_starts_each_slot_once_per_member_and_bounds_catchup(ping_route: None) -> None:
    add_campaign(spec())
    first = tick(T0 + timedelta(seconds=150))
    assert (first.slots_started, first.runs_started, first.duplicates, first.slots_skipped) == (3, 6, 0, 0)
    runs = runs_by_event()
    assert sorted(runs) == sorted(
        f"campaign:weekly:2026-01-05T12:0{m}:00Z:{i}" for m in (0, 1, 2) for i in (0, 1)
    )
    env = wait_for_run(runs["campaign:weekly:2026-01-05T12:01:00Z:1"])
    assert env.status == "succeeded"
    assert env.metadata.campaign == "weekly"
    assert env.metadata.payload == {"offer": "spring", "member": "b@x.co"}
    assert env.metadata.extra["occurred_at"] == "2026-01-05T12:01:00.000000Z"  # iso_utc
    assert wait_for_run(runs["campaign:weekly:2026-01-05T12:00:00Z:0"]).metadata.payload["email"] == "a@x.co"

    assert tick(T0 + timedelta(seconds=150)).slots_started == 0  # a retried tick
    assert tick(T0 + timedelta(seconds=100)).slots_started == 0  # a late tick
    after_downtime = tick(T0 + timedelta(minutes=16, seconds=30))  # 14 slots missed, catch-up is 3
    assert (after_downtime.slots_started, after_downtime.slots_skipped) == (3, 11)
    assert after_downtime.slots[-1] == "weekly@2026-01-05T12:16:00Z"
    assert len(runs_by_event()) == 12
    with sql_engine().connect() as conn:
        slots = conn.execute(sa.text("select runs from campaign_slot")).scalars().all()
        beat = conn.execute(sa.text("select beat_at, detail from heartbeat where name = 'beat'")).one()
    assert slots == [2] * 6
    assert beat.detail["slots_started"] == 3
    assert beat.beat_at == T0 + timedelta(minutes=16, seconds=30)


def test_concurrent_ticks_start_a_slot_once(ping_route: None) -> None:
    add_campaign(spec("racing", max_catchup=5))
    now, reports = T0 + timedelta(seconds=270), []
    barrier = threading.Barrier(6)

    def go() -> None:
        barrier.wait()
        try:
            reports.append(tick(now))
        finally:
            release_result_backend()

    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.slots_started for r in reports) == 5
    assert sum(r.runs_started for r in reports) == 10
    assert sum(r.duplicates for r in reports) == 0
    assert len(runs_by_event()) == 10


def test_pause_resume_and_unrouted_campaign_events_are_kept(ping_route: None) -> None:
    now = utcnow()
    add_campaign(spec("paused", starts_at=now - timedelta(minutes=10), max_catchup=50))
    set_enabled("paused", False)
    assert tick(now).campaigns == 0
    set_enabled("paused", True)  # no catch-up of the slots that fell while paused
    assert tick(now + timedelta(seconds=1)).slots_started == 0
    assert tick(now + timedelta(seconds=61)).slots_started == 1

    add_campaign(CampaignSpec(name="orphan", event_type="campaign.nobody", every_seconds=60, starts_at=T0))
    report = tick(T0 + timedelta(seconds=30))
    assert report.rejected == 1
    assert [r.event_id for r in list_rejected()] == ["campaign:orphan:2026-01-05T12:00:00Z:0"]


def test_cli_add_from_file_list_pause_resume(ping_route: None, tmp_path: Path) -> None:
    runner = CliRunner()
    path = tmp_path / "campaigns.yaml"
    path.write_text(
        "campaigns:\n"
        "  - {name: nightly, event_type: campaign.ping, cron: '0 2 * * *', timezone: Europe/Paris}\n"
        "  - {name: often, event_type: campaign.ping, every: 30, audience: [{email: a@x.co}]}\n",
        encoding="utf-8",
    )
    assert runner.invoke(cli, ["campaigns", "add", "--file", str(path)]).exit_code == 0
    flags = ["campaigns", "add", "flagged", "--event-type", "campaign.ping", "--every", "5", "--paused"]
    assert runner.invoke(cli, [*flags, "--payload", '{"k": 1}']).exit_code == 0
    assert runner.invoke(cli, ["campaigns", "pause", "often"]).exit_code == 0
    listed = json.loads(runner.invoke(cli, ["campaigns", "list", "--json"]).stdout)
    state = {c["name"]: (c["schedule_kind"], c["enabled"]) for c in listed}
    assert state == {"flagged": ("interval", False), "nightly": ("cron", True), "often": ("interval", False)}
    assert runner.invoke(cli, ["campaigns", "resume", "flagged"]).exit_code == 0
    table = runner.invoke(cli, ["campaigns", "list"]).stdout
    assert "cron 0 2 * * * Europe/Paris" in table
    assert "every 5s" in table

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "orchestration.cli.main", *args], capture_output=True, text=True, cwd=ROOT
        )

    dup = run("campaigns", "add", "often", "--event-type", "campaign.ping", "--every", "9")
    assert dup.returncode == 1
    assert dup.stderr.strip().splitlines() == [
        "error: name: campaign 'often' already exists; pass --replace to update it"
    ]
    missing = run("campaigns", "pause", "nope")
    assert missing.returncode == 1
    assert "campaign 'nope' not found (campaigns: flagged, nightly, often)" in missing.stderr


def test_a_tick_that_died_after_claiming_is_finished_by_a_later_tick(ping_route: None) -> None:

    add_campaign(spec("crashy"))
    with sql_engine().connect() as conn:
        campaign_id = conn.execute(sa.text("select id from campaign where name = 'crashy'")).scalar_one()
    # a tick claims the slot, ingests the first member's event, then dies
    row, claimed = _claim_due_slots(campaign_id, TickReport(at=T0 + timedelta(seconds=30)))
    assert claimed == [T0]
    manager().ingest_event(slot_events(row, T0)[0])
    assert tick(T0 + timedelta(seconds=30)).resumed == 0  # still within the lease: left alone
    with sql_engine().begin() as conn:
        conn.execute(sa.text("update campaign_slot set created_at = created_at - interval '10 minutes'"))
    report = tick(T0 + timedelta(seconds=30))
    assert (report.resumed, report.slots_started, report.runs_started, report.duplicates) == (1, 1, 2, 1)
    assert len(runs_by_event()) == 2
    with sql_engine().connect() as conn:
        assert conn.execute(sa.text("select runs from campaign_slot")).scalars().all() == [2]
