"""Durable time end to end, on the in-process worker with Redis and Postgres: a run parks at a
sleep or a wait (status ``waiting``, a timer or an open wait in the store, no message anywhere) and
wakes from a timer the poller fires, a signal, or its wait's timeout; cancel and retry know it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from orchestration.control import run_control, signals
from orchestration.control.run_control import RunStateError
from orchestration.control.sweeper import sweep
from orchestration.engine import timers
from orchestration.engine import waits as engine_waits
from orchestration.engine.outcome import Action
from orchestration.errors import FieldError, RunNotFoundError
from orchestration.flows.timing import parse_timestamp
from orchestration.orchestrators.base import FlowRunner
from tests.support.runs import envelope, record, run_error, wait_for_run
from tests.support.wait import eventually
from tests.support.wiring import engine
from tests.waits.helpers import (
    calls,
    far_future,
    flow,
    poll_until_ended,
    publications,
    signals_of,
    start,
    timers_of,
    wait_for_status,
    waits_of,
)

SLEEPY = {
    "name": "waits-sleep",
    "steps": [
        {"id": "a", "agent": "effect"},
        {"kind": "sleep", "id": "nap", "for": "1s"},
        {"id": "b", "agent": "effect"},
    ],
}
REPLY = {
    "name": "waits-reply",
    "steps": [
        {"id": "a", "agent": "effect"},
        {"kind": "wait", "id": "reply", "signal": "replied", "timeout": "1h"},
        {"id": "b", "agent": "effect", "input": {"got": "$steps.reply.data"}},
    ],
}
TIMEOUT = {
    "name": "waits-timeout",
    "steps": [
        {
            "kind": "wait",
            "id": "reply",
            "signal": "replied",
            "timeout": "1s",
            "on_timeout": {"id": "follow_up", "agent": "effect"},
        },
        {"id": "b", "agent": "effect"},
    ],
}
STRICT_TIMEOUT = {
    "name": "waits-strict-timeout",
    "steps": [
        {"kind": "wait", "id": "approve", "signal": "approval", "timeout": "1s"},
        {"id": "send", "agent": "effect", "input": {"by": "$steps.approve.data.by"}},
    ],
}
SLEEP_THEN_WAIT = {
    "name": "waits-sleep-then-wait",
    "steps": [
        {"kind": "sleep", "id": "nap", "for": "1s"},
        {"kind": "wait", "id": "reply", "signal": "replied"},
    ],
}


def test_a_sleep_parks_the_run_and_the_poller_wakes_it(worker: object) -> None:
    run_id = start(SLEEPY)
    env = wait_for_status(run_id, "waiting")
    assert record(env, "nap").status == "running"
    assert record(env, "a").status == "succeeded"
    assert env.record("b") is None
    [timer] = timers_of(run_id)
    assert env.metadata.wait is not None
    assert (env.metadata.wait.node_id, env.metadata.wait.kind) == ("nap", "sleep")
    assert env.metadata.wait.until == timer["due_at"]
    assert timer["kind"] == "sleep"
    assert timer["fired_at"] is None
    assert publications(run_id) == [(1, "open", None)]  # nothing more on the way while it waits

    env = poll_until_ended(run_id)
    assert env.status == "succeeded", env.metadata.error
    assert [r.status for r in env.records] == ["succeeded"] * 3
    assert calls(run_id, "a") == 1
    assert calls(run_id, "b") == 1
    nap = record(env, "nap").output
    assert parse_timestamp(nap["woke_at"]) >= parse_timestamp(timers_of(run_id)[0]["due_at"].isoformat())
    assert publications(run_id) == [(1, "open", None), (2, "wake", "nap")]


def test_a_signal_resumes_a_wait_and_its_data_becomes_the_output(worker: object) -> None:
    run_id = start(REPLY)
    waiting = wait_for_status(run_id, "waiting")
    assert waiting.metadata.wait is not None
    assert (waiting.metadata.wait.kind, waiting.metadata.wait.signal) == ("wait", "replied")
    [wait] = waits_of(run_id)
    assert (wait["signal"], wait["status"]) == ("replied", "open")
    assert wait["timeout_at"] is not None

    result = signals.signal_run(run_id, "replied", {"text": "yes please"}, signal_id="s-1")
    assert (result.resumed, result.duplicate, result.status) == (True, False, "running")
    env = wait_for_run(run_id)
    assert env.status == "succeeded", env.metadata.error
    assert env.metadata.wait is None
    assert record(env, "reply").output["data"] == {"text": "yes please"}
    assert record(env, "b").input["got"] == {"text": "yes please"}
    assert waits_of(run_id)[0]["status"] == "signalled"
    assert timers_of(run_id)[0]["fired_at"] is not None  # the timeout will not fire

    again = signals.signal_run(run_id, "replied", {"text": "twice"}, signal_id="s-1")
    assert again.duplicate  # the same signal id is one signal, even after the run ended
    with pytest.raises(RunStateError, match="succeeded"):
        signals.signal_run(run_id, "replied", {"text": "late"})


def test_a_duplicate_signal_is_one_signal(worker: object) -> None:
    run_id = start(REPLY)
    wait_for_status(run_id, "waiting")
    first = signals.signal_run(run_id, "replied", {"n": 1}, signal_id="dup")
    second = signals.signal_run(run_id, "replied", {"n": 2}, signal_id="dup")
    assert first.resumed
    assert second.duplicate
    assert not second.resumed
    env = wait_for_run(run_id)
    assert record(env, "reply").output["data"] == {"n": 1}
    assert len(signals_of(run_id)) == 1
    assert calls(run_id, "b") == 1


def test_a_signal_before_its_wait_is_kept_and_taken_when_the_wait_starts(worker: object) -> None:
    run_id = start(SLEEP_THEN_WAIT)
    wait_for_status(run_id, "waiting")  # asleep at nap: the wait has not started
    kept = signals.signal_run(run_id, "replied", {"early": True})
    assert (kept.resumed, kept.status) == (False, "waiting")
    env = poll_until_ended(run_id)
    assert env.status == "succeeded", env.metadata.error
    assert record(env, "reply").output["data"] == {"early": True}
    assert waits_of(run_id) == []  # it never had to wait
    assert signals_of(run_id)[0]["consumed_by"] == "reply"


def test_signals_that_cannot_be_taken_are_clear_errors(worker: object) -> None:
    run_id = start(REPLY)
    wait_for_status(run_id, "waiting")
    with pytest.raises(FieldError, match=r"waits for no signal 'nope' .*replied"):
        signals.signal_run(run_id, "nope")
    with pytest.raises(RunNotFoundError):
        signals.signal_run("no-such-run", "replied")
    with pytest.raises(FieldError, match=r"data\.text: contains a NUL character"):
        signals.signal_run(run_id, "replied", {"text": "a\x00b"})
    assert signals_of(run_id) == []


def test_a_timeout_runs_on_timeout_and_the_flow_goes_on(worker: object) -> None:
    run_id = start(TIMEOUT)
    wait_for_status(run_id, "waiting")
    env = poll_until_ended(run_id)
    assert env.status == "succeeded", env.metadata.error
    assert record(env, "reply").output["timed_out"] is True
    assert calls(run_id, "follow_up") == 1
    assert calls(run_id, "b") == 1
    assert waits_of(run_id)[0]["status"] == "timed_out"
    assert publications(run_id)[-1] == (2, "timeout", "reply")


def test_a_run_failed_by_a_timeout_is_retried_and_waits_again(worker: object) -> None:
    run_id = start(STRICT_TIMEOUT)
    wait_for_status(run_id, "waiting")
    env = poll_until_ended(run_id)
    assert env.status == "failed"
    assert run_error(env).type == "WaitTimedOut"
    assert record(env, "approve").status == "failed"

    assert run_control.retry_run(run_id) == "running"
    wait_for_status(run_id, "waiting")
    assert [w["status"] for w in waits_of(run_id)] == ["timed_out", "open"]
    signals.approve(run_id, by="ana", comment="ok")
    env = wait_for_run(run_id)
    assert env.status == "succeeded", env.metadata.error
    assert record(env, "approve").output["data"] == {"by": "ana", "comment": "ok"}
    assert record(env, "send").input["by"] == "ana"


def test_cancelling_a_waiting_run_closes_its_waits_and_timers(worker: object) -> None:
    run_id = start(REPLY)
    wait_for_status(run_id, "waiting")
    assert run_control.cancel_run(run_id) == "cancelled"
    env = wait_for_run(run_id)
    assert env.status == "cancelled"
    assert record(env, "reply").status == "skipped"
    assert waits_of(run_id)[0]["status"] == "closed"
    assert all(t["fired_at"] is not None for t in timers_of(run_id))
    poll_until_ended(run_id, now=far_future())  # nothing left to fire into it
    assert envelope_status(run_id) == "cancelled"
    assert calls(run_id, "b") == 0


def envelope_status(run_id: str) -> str:
    return str(wait_for_run(run_id).status)


def test_a_window_sleep_wakes_at_the_window_in_the_run_time_zone(worker: object) -> None:
    zone = "America/New_York"
    run_id = start(
        {
            "name": "waits-window",
            "steps": [
                {
                    "kind": "sleep",
                    "id": "send_window",
                    "window": {"start": "09:00", "end": "09:01", "days": ["mon"], "timezone": "$payload.tz"},
                },
                {"id": "send", "agent": "effect"},
            ],
        },
        {"tz": zone},
    )
    wait_for_status(run_id, "waiting")
    [timer] = timers_of(run_id)
    local = timer["due_at"].astimezone(ZoneInfo(zone))
    assert (local.weekday(), local.hour, local.minute) == (0, 9, 0)  # Monday 09:00 in New York, DST or not
    env = poll_until_ended(run_id, now=timer["due_at"])
    assert env.status == "succeeded", env.metadata.error
    assert calls(run_id, "send") == 1


def test_a_missing_time_zone_fails_the_run_naming_the_field(worker: object) -> None:
    run_id = start(
        {
            "name": "waits-no-zone",
            "steps": [
                {
                    "kind": "sleep",
                    "id": "w",
                    "window": {"start": "09:00", "end": "17:00", "timezone": "$payload.tz"},
                },
                {"id": "send", "agent": "effect"},
            ],
        },
        {"name": "no tz given"},
    )
    env = wait_for_run(run_id)
    assert env.status == "failed"
    assert run_error(env).type == "TimeInputError"
    assert run_error(env).message.startswith("payload.tz: not set")
    assert calls(run_id, "send") == 0


def test_the_sweeper_leaves_a_long_wait_alone_and_the_deadline_still_bounds_it(worker: object) -> None:
    run_id = start({**REPLY, "name": "waits-deadline", "deadline_seconds": 3600})
    wait_for_status(run_id, "waiting")
    later = datetime.now(UTC) + timedelta(minutes=30)  # stalled by any measure, but waiting
    report = sweep(engine(), stall_seconds=60, max_redrives=3, now=later)
    assert run_id not in report.redriven + report.failed + report.past_deadline
    assert envelope_status_now(run_id) == "waiting"

    past = sweep(engine(), stall_seconds=60, max_redrives=3, now=datetime.now(UTC) + timedelta(hours=2))
    assert past.past_deadline == [run_id]
    env = wait_for_run(run_id)
    assert env.status == "failed"
    assert run_error(env).type == "DeadlineExceeded"
    assert record(env, "reply").status == "failed"
    assert waits_of(run_id)[0]["status"] == "closed"
    with pytest.raises(RunStateError):
        signals.signal_run(run_id, "replied")


def envelope_status_now(run_id: str) -> str:
    return str(envelope(run_id).status)


def test_an_inline_run_parks_and_its_continuation_runs_on_the_workers(worker: object) -> None:
    handle = FlowRunner(engine(), flow(SLEEPY)).run({}, mode="inline")
    assert handle.status == "waiting"
    assert calls(handle.run_id, "a") == 1
    env = poll_until_ended(handle.run_id)
    assert env.status == "succeeded", env.metadata.error
    assert calls(handle.run_id, "b") == 1


def test_an_unknown_time_zone_in_an_event_is_rejected_at_ingest_naming_the_field(worker: object) -> None:
    definition = {
        "name": "waits-zone-at-ingest",
        "steps": [
            {
                "kind": "sleep",
                "id": "w",
                "window": {"start": "09:00", "end": "17:00", "timezone": "$payload.tz"},
            },
        ],
    }
    with pytest.raises(FieldError, match=r"payload\.tz: unknown time zone 'Mars/Olympus'"):
        FlowRunner(engine(), flow(definition)).run({"tz": "Mars/Olympus"}, mode="async")


def test_a_park_message_delivered_again_goes_on_only_where_its_chain_went_on(worker: object) -> None:
    run_id = start(
        {
            "name": "waits-redelivered",
            "steps": [
                {"kind": "sleep", "id": "nap", "for": "1s"},
                {"kind": "wait", "id": "reply", "signal": "replied"},
                {"id": "b", "agent": "effect", "input": {"sleep": 3}},
            ],
        }
    )
    wait_for_status(run_id, "waiting")
    signals.signal_run(run_id, "replied", {"early": True})  # kept: the wait will go on in place

    def b_running() -> bool:
        timers.fire_due(engine())
        env = envelope(run_id)
        return env.record("b") is not None and record(env, "b").status == "running"

    eventually(b_running, 30, "step b to run", interval=0.1)
    # nap woke through its own publication: a copy of its park message stops; reply went on from
    # its park message itself: a copy of that one goes on, like any redelivered step
    assert engine_waits.park(run_id, "nap").action is Action.PARK
    assert engine_waits.park(run_id, "reply").action is Action.CONTINUE
    assert wait_for_run(run_id).status == "succeeded"
