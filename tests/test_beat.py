"""Two real ``celery beat`` processes at once send ``campaignflow.campaign_tick`` to the session worker;
every slot of a 1-second campaign starts exactly one run per audience member."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchestration.control.campaigns import CampaignSpec, add_campaign, set_enabled
from orchestration.control.manager import Route, add_route
from orchestration.store import sql_engine
from orchestration.store.repository import utcnow
from tests.support.figures import figure
from tests.support.runs import wait_for_run
from tests.support.wait import eventually
from tests.support.wiring import flows

ROOT = Path(__file__).resolve().parents[1]
SENT = "Sending due task campaignflow-campaign-tick"


def start_beat(tmp_path: Path, index: int) -> tuple[subprocess.Popen[bytes], Path]:
    # same broker, key prefix and database as the session worker, so it runs the ticks
    env = {
        **os.environ,
        "CAMPAIGNFLOW_CAMPAIGN_TICK_INTERVAL": "0.5",
        "CAMPAIGNFLOW_SWEEP_INTERVAL": "3600",
    }
    log = tmp_path / f"beat-{index}.log"
    schedule = str(tmp_path / f"schedule-{index}")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "orchestration.app", "beat", "-s", schedule, "-l", "INFO"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc, log


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


@pytest.fixture
def two_beats(worker: object, tmp_path: Path) -> Iterator[list[tuple[subprocess.Popen[bytes], Path]]]:
    beats = [start_beat(tmp_path, i) for i in (1, 2)]
    try:
        yield beats
    finally:
        for proc, _ in beats:
            stop(proc)


def query(sql: str) -> list[sa.Row[tuple[object, ...]]]:
    with sql_engine().connect() as conn:
        return list(conn.execute(sa.text(sql)).all())


def test_two_beats_start_each_slot_once_per_member(
    two_beats: list[tuple[subprocess.Popen[bytes], Path]],
) -> None:
    flows().add({"name": "beat-noop", "steps": [{"id": "a", "agent": "noop"}]})
    add_route(Route(event_type="campaign.beat", flow="beat-noop"))
    anchor = utcnow() + timedelta(seconds=1)
    add_campaign(
        CampaignSpec(
            name="every-second",
            event_type="campaign.beat",
            every_seconds=1,
            starts_at=anchor,
            audience=[{"email": f"m{i}@x.co"} for i in range(3)],
            max_catchup=3,
        )
    )

    def both_beats_ticking() -> bool:
        return all(log.read_text(errors="replace").count(SENT) >= 3 for _, log in two_beats)

    eventually(both_beats_ticking, 90, "both beats to send ticks", interval=0.1)
    eventually(lambda: len(query("select slot_at from campaign_slot")) >= 8, 90, "eight started slots")
    for proc, _ in two_beats:
        stop(proc)
    set_enabled("every-second", False)  # waits for a tick holding the campaign, then no more slots

    ticks = [log.read_text(errors="replace").count(SENT) for _, log in two_beats]
    slots = query("select slot_at, runs from campaign_slot order by slot_at")
    runs = query("select run_id, event_id from run where campaign = 'every-second'")
    per_event = Counter(r.event_id for r in runs)
    duplicates = sum(n - 1 for n in per_event.values())
    expected = {
        f"campaign:every-second:{s.slot_at.isoformat().replace('+00:00', 'Z')}:{i}"
        for s in slots
        for i in range(3)
    }
    assert duplicates == 0
    assert [s.runs for s in slots] == [3] * len(slots)
    assert set(per_event) == expected
    assert len(runs) == 3 * len(slots)
    assert all((s.slot_at - anchor) % timedelta(seconds=1) == timedelta(0) for s in slots)
    assert len({s.slot_at for s in slots}) == len(slots)
    for run in runs:
        assert wait_for_run(run.run_id).status == "succeeded"
    beat = query("select detail from heartbeat where name = 'beat'")
    assert len(beat) == 1
    assert "slots_started" in beat[0].detail
    figure(
        f"beat: two beats sent {ticks} ticks; {len(slots)} slots started, "
        f"{len(runs)} runs for 3 members, duplicates = {duplicates}"
    )
