"""The time math of sleeps (no services): durations, timestamps, and send windows across DST
changes, where a wall-clock time maps to a different UTC instant on either side."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from orchestration.errors import FlowValidationError
from orchestration.flows import parse_flow
from orchestration.flows.timing import (
    TimingError,
    next_in_window,
    parse_duration,
    parse_timestamp,
    zone,
)

NEW_YORK = zone("America/New_York")
PARIS = zone("Europe/Paris")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("2h", 7200), ("3d", 259200), ("1h30m", 5400)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "2", "2w", "1.5h", "-3d", "0s", "h"])
def test_bad_durations_say_how_to_write_one(text: str) -> None:
    with pytest.raises(TimingError, match=r"30s, 15m, 2h, 3d|zero"):
        parse_duration(text)


def test_timestamps_need_an_offset() -> None:
    assert parse_timestamp("2026-12-05T09:00:00Z") == utc(2026, 12, 5, 9)
    assert parse_timestamp("2026-12-05T10:00:00+01:00") == utc(2026, 12, 5, 9)
    with pytest.raises(TimingError, match="no time zone offset"):
        parse_timestamp("2026-12-05T09:00:00")
    with pytest.raises(TimingError, match="not an ISO 8601 timestamp"):
        parse_timestamp("next tuesday")


def test_unknown_zones_are_named() -> None:
    with pytest.raises(TimingError, match="unknown time zone 'Mars/Olympus'"):
        zone("Mars/Olympus")


def test_inside_the_window_is_now() -> None:
    now = utc(2026, 12, 2, 15, 0)  # Wednesday 10:00 in New York (EST, UTC-5)
    assert next_in_window(now, time(9), time(17), WEEKDAYS, NEW_YORK) == now


def test_before_the_window_opens_today_and_after_it_the_next_day() -> None:
    early = utc(2026, 12, 2, 12, 0)  # Wednesday 07:00 EST
    assert next_in_window(early, time(9), time(17), WEEKDAYS, NEW_YORK) == utc(2026, 12, 2, 14, 0)
    late = utc(2026, 12, 2, 23, 0)  # Wednesday 18:00 EST -> Thursday 09:00 EST
    assert next_in_window(late, time(9), time(17), WEEKDAYS, NEW_YORK) == utc(2026, 12, 3, 14, 0)


def test_the_local_date_not_the_utc_date_decides_the_day() -> None:
    now = utc(2026, 12, 5, 2, 0)  # Saturday in UTC, Friday 21:00 in New York
    assert next_in_window(now, time(9), time(17), WEEKDAYS, NEW_YORK) == utc(2026, 12, 7, 14, 0)  # Monday


def test_a_window_after_the_autumn_dst_change_uses_the_new_offset() -> None:
    # New York leaves DST on Sunday 2026-11-01: Friday 09:00 is 13:00 UTC (EDT), Monday 09:00 is 14:00 (EST)
    friday_evening = utc(2026, 10, 30, 22, 0)  # Friday 18:00 EDT
    assert next_in_window(friday_evening, time(9), time(17), WEEKDAYS, NEW_YORK) == utc(2026, 11, 2, 14, 0)


def test_a_window_after_the_spring_dst_change_uses_the_new_offset() -> None:
    # Paris enters DST on Sunday 2026-03-29: Friday 09:00 is 08:00 UTC (CET), Monday 09:00 is 07:00 (CEST)
    friday_evening = utc(2026, 3, 27, 18, 0)  # Friday 19:00 CET
    assert next_in_window(friday_evening, time(9), time(17), WEEKDAYS, PARIS) == utc(2026, 3, 30, 7, 0)


def test_a_window_start_that_does_not_exist_on_the_spring_day_resolves_after_the_jump() -> None:
    # New York jumps from 02:00 to 03:00 on Sunday 2026-03-08: 02:30 does not exist that day
    saturday_night = utc(2026, 3, 8, 6, 0)  # Sunday 01:00 EST
    woke = next_in_window(saturday_night, time(2, 30), time(4, 0), ("sun",), NEW_YORK)
    assert woke == utc(2026, 3, 8, 7, 30)  # 03:30 EDT, inside the window
    assert woke.astimezone(NEW_YORK).hour == 3


def test_a_window_that_closed_on_its_only_day_waits_a_week() -> None:
    monday_evening = utc(2026, 12, 7, 23, 0)  # Monday 18:00 EST
    assert next_in_window(monday_evening, time(9), time(17), ("mon",), NEW_YORK) == utc(2026, 12, 14, 14, 0)


# ------------------------------------------------------------------------------------ validation
def test_sleep_and_wait_validate_where_they_may_go_and_what_they_take() -> None:
    def problems(steps: list[dict[str, object]]) -> str:
        with pytest.raises(FlowValidationError) as info:
            parse_flow({"name": "t", "steps": steps})
        return str(info.value)

    in_parallel = problems(
        [{"kind": "parallel", "id": "p", "members": [{"kind": "wait", "id": "w", "signal": "s"}]}]
    )
    assert "steps[0].members[0]: a wait cannot sit inside parallel 'p'" in in_parallel
    assert "in a sequence or in a branch arm" in in_parallel
    in_map = problems(
        [
            {
                "kind": "map",
                "id": "m",
                "over": "$payload.xs",
                "do": {"kind": "sequence", "steps": [{"kind": "sleep", "id": "z", "for": "1s"}]},
            }
        ]
    )
    assert "steps[0].do.steps[0]" in in_map
    assert "sleep" in in_map
    assert "exactly one of for, until or window" in problems([{"kind": "sleep", "id": "z"}])
    assert "unknown time zone 'Nowhere/Land'" in problems(
        [
            {
                "kind": "sleep",
                "id": "z",
                "window": {"start": "09:00", "end": "17:00", "timezone": "Nowhere/Land"},
            }
        ]
    )
    assert "start 17:00 must be before end 09:00" in problems(
        [{"kind": "sleep", "id": "z", "window": {"start": "17:00", "end": "09:00", "timezone": "UTC"}}]
    )
    assert "on_timeout needs a timeout" in problems(
        [{"kind": "wait", "id": "w", "signal": "s", "on_timeout": {"id": "f", "agent": "noop"}}]
    )
    assert "2w" in problems([{"kind": "sleep", "id": "z", "for": "2w"}])
    assert "steps[0].until: $steps.later" in problems(
        [{"kind": "sleep", "id": "z", "until": "$steps.later.at"}]
    )
    ok = parse_flow(
        {
            "name": "t",
            "steps": [
                {
                    "kind": "branch",
                    "id": "b",
                    "cases": [
                        {
                            "when": {"field": "payload.x", "op": "exists"},
                            "then": {"kind": "wait", "id": "w", "signal": "s"},
                        }
                    ],
                    "else": {"kind": "sleep", "id": "z", "for": "1s"},
                },
                {"kind": "sleep", "id": "z2", "until": "$steps.w.data.at"},
            ],
        }
    )
    assert [n.kind for n in ok.walk()][-1] == "sleep"
