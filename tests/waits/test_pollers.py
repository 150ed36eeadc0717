"""The timer poller under concurrency and crashes: two pollers over the same due timers wake each
run once; a poller SIGKILLed in the middle of a batch fired nothing of it (its claim dies with its
transaction) and the next pass fires every timer it held."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

from orchestration.engine import publish, timers
from orchestration.engine.timers import TimerReport
from tests.support.runs import wait_for_run
from tests.support.wait import eventually
from tests.support.wiring import app, engine
from tests.support.workers import ROOT
from tests.waits.helpers import calls, far_future, publications, start, timers_of, wait_for_status

NAPPING = {
    "name": "waits-napping",
    "steps": [{"kind": "sleep", "id": "nap", "for": "1h"}, {"id": "b", "agent": "effect"}],
}

#: A poller that wakes two runs of its batch and then hangs inside the batch's transaction.
HANGING_POLLER = textwrap.dedent(
    """
    import time
    from datetime import UTC, datetime
    from orchestration.bootstrap import bootstrap
    from orchestration.engine import publish, timers

    runtime = bootstrap()
    real_wake, woken = timers.engine_waits.wake, []

    def wake(*args, **kwargs):
        woken.append(1)
        if len(woken) == 3:
            print("mid-batch", flush=True)
            time.sleep(600)
        return real_wake(*args, **kwargs)

    timers.engine_waits.wake = wake
    timers.fire_due(runtime.engine, now=datetime(2100, 1, 1, tzinfo=UTC), batch=10)
    """
)


def parked_runs(count: int) -> list[str]:
    run_ids = [start(NAPPING) for _ in range(count)]
    for run_id in run_ids:
        wait_for_status(run_id, "waiting")
    return run_ids


def woken_once(run_ids: list[str]) -> None:
    for run_id in run_ids:
        env = wait_for_run(run_id)
        assert env.status == "succeeded", env.metadata.error
        assert [kind for _pub, kind, _node in publications(run_id)] == ["open", "wake"]
        assert calls(run_id, "b") == 1
        assert all(t["fired_at"] is not None for t in timers_of(run_id))


def test_two_pollers_over_the_same_due_timers_wake_each_run_once(worker: object) -> None:
    run_ids = parked_runs(30)
    barrier = threading.Barrier(2)
    reports: list[TimerReport] = []

    def poll() -> None:
        barrier.wait()
        reports.append(timers.fire_due(engine(), now=far_future(), batch=4))

    pollers = [threading.Thread(target=poll) for _ in range(2)]
    for p in pollers:
        p.start()
    for p in pollers:
        p.join(60)
    assert sum(r.fired for r in reports) == 30
    woke = Counter(run_id for r in reports for run_id in r.woke)
    assert sorted(woke) == sorted(run_ids)
    assert set(woke.values()) == {1}
    woken_once(run_ids)


def test_a_poller_killed_mid_batch_loses_no_timer(worker: object) -> None:
    run_ids = parked_runs(14)
    proc = subprocess.Popen(
        [sys.executable, "-c", HANGING_POLLER],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"mid-batch"
        # the hung poller holds its 10 timers: another poller skips them and fires the other 4
        meanwhile = timers.fire_due(engine(), now=far_future())
        assert meanwhile.fired == 4
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()

    def all_fired() -> bool:
        timers.fire_due(engine(), now=far_future())
        return all(t["fired_at"] is not None for r in run_ids for t in timers_of(r))

    eventually(all_fired, 30, "the killed poller's timers to fire", interval=0.2)
    woken_once(run_ids)


def test_a_wake_up_the_poller_could_not_publish_is_published_by_the_relay(worker: object) -> None:
    [run_id] = parked_runs(1)
    # the batch committed (timer fired, run awake, publication in the outbox); the poller died
    # before its fast path published anything
    entries, claimed = timers._fire_batch(far_future(), 10, TimerReport())
    assert claimed == 1
    assert [(e.kind, e.resume) for e in entries] == [("wake", "nap")]
    assert wait_for_status(run_id, "running").record("b") is None
    report = publish.relay(engine(), now=datetime.now(UTC) + timedelta(seconds=10))
    assert report.published == [run_id]
    woken_once([run_id])


def test_beat_sends_the_poller_every_timer_interval_and_drops_a_pass_nobody_took() -> None:
    entry = app.conf.beat_schedule["campaignflow-timers"]
    assert entry["task"] == "campaignflow.engine.timers"
    assert entry["schedule"] == 1.0  # CAMPAIGNFLOW_TIMER_INTERVAL's default
    assert entry["options"]["expires"] >= entry["schedule"]
