"""The permits' scripts on a real Redis (the session's, under a key prefix of each test's own), and
the declarations of the limits: parsing, the key references, the order of precedence."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
import sqlalchemy as sa

from orchestration.control.manager import parse_event
from orchestration.engine.permits import Limit, Permits, declared, permits
from orchestration.engine.permits.holder import rate_parts
from orchestration.engine.priority import from_message, to_message
from orchestration.errors import EventValidationError
from orchestration.flows.limits import KeyRef, LimitDecl, parse_limits_setting
from orchestration.orchestrators.base import FlowRunner
from orchestration.registry import AgentSpec
from orchestration.settings import Settings, configure, get_settings
from orchestration.store import sql_engine
from tests.support import services
from tests.support.agents import LIMITED_AGENT
from tests.support.flows import flow
from tests.support.runs import wait_for_run
from tests.support.wiring import engine, registry
from tests.support.workers import ROOT

CLI = [sys.executable, "-m", "orchestration.cli.main"]


@pytest.fixture
def holder() -> Iterator[Permits]:
    prefix = f"{services.new_schema_name('cf_permits')}:"
    client = redis.Redis.from_url(services.redis_url(services.SESSION_REDIS_DBS[0]))
    yield Permits(client, prefix, lease_seconds=1.0)
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)
    client.close()


def grants(holder: Permits, limit: Limit, names: list[str], priority: int = 0) -> list[bool]:
    return [holder.acquire(limit, name, priority).granted for name in names]


# ------------------------------------------------------------------------------ declarations


def test_rates_keys_and_filters_parse_and_bad_ones_name_the_fix() -> None:
    assert rate_parts("20/s") == (20, 1_000_000)
    assert rate_parts("100/m") == (100, 60_000_000)
    assert rate_parts("0.5/s") == (1, 2_000_000)
    ref = KeyRef.parse("$input.email|domain")
    assert ref.value({"input": {"email": "Ann@Example.COM"}}) == "example.com"
    assert KeyRef.parse("$payload.tenant").value({"payload": {"tenant": "acme"}}) == "acme"
    assert KeyRef.parse("$payload.missing").value({"payload": {}}) == ""
    with pytest.raises(ValueError, match=r"unknown filter 'domian' \(known: domain, lower\)"):
        KeyRef.parse("$input.email|domian")
    with pytest.raises(ValueError, match=r"must start with one of \$input"):
        KeyRef.parse("$body.email")
    with pytest.raises(ValueError, match="global_rate_limit"):
        LimitDecl.model_validate({"global_rate_limit": "20 per second"})


def test_the_setting_wins_over_the_step_which_wins_over_the_agent() -> None:
    spec: AgentSpec = registry.agent(LIMITED_AGENT)
    assert declared(spec, None) == LimitDecl(global_concurrency=3, global_rate_limit="20/s")
    step = declared(spec, {"global_concurrency": 1, "limit_key": "$payload.tenant"})
    assert step == LimitDecl(global_concurrency=1, global_rate_limit="20/s", limit_key="$payload.tenant")
    before = get_settings()
    configure(before.model_copy(update={"limits": '{"limited_isolated": {"global_rate_limit": "5/m"}}'}))
    try:
        over = declared(spec, {"global_concurrency": 1})
    finally:
        configure(before)
    assert over == LimitDecl(global_concurrency=1, global_rate_limit="5/m")


def test_a_bad_limits_setting_is_one_error_naming_the_agent_and_the_field() -> None:
    with pytest.raises(
        ValueError, match=r"^send_email.global_concurrency: Input should be greater than or equal to 1$"
    ):
        parse_limits_setting('{"send_email": {"global_concurrency": 0}}')
    with pytest.raises(ValueError, match="not JSON"):
        parse_limits_setting("send_email=3")
    assert Settings(limits="").limits == ""


# ---------------------------------------------------------------------------------- scripts


def test_concurrency_is_leases_that_return_on_release_or_expiry(holder: Permits) -> None:
    limit = Limit("a", "", 2, None)
    assert grants(holder, limit, ["r:1", "r:2", "r:3"]) == [True, True, False]
    assert holder.acquire(limit, "r:1").granted  # a redelivery keeps (renews) its own lease
    assert holder.release(limit, "r:1")
    assert holder.acquire(limit, "r:3").granted
    refused = holder.acquire(limit, "r:4")
    assert not refused.granted
    assert 0 < refused.wait <= 1.0
    leases = holder.keys("a", "")["leases"]
    assert holder.renew(leases, ["r:2"]) == 1
    # a holder that never releases (its worker died) loses its lease after the lease time
    deadline = time.monotonic() + 10
    while not holder.acquire(limit, "r:4").granted:
        assert time.monotonic() < deadline, "the expired leases never came back"
        time.sleep(0.05)


def test_the_rate_never_grants_more_than_its_count_within_a_period(holder: Permits) -> None:
    limit = Limit("b", "k", None, "5/s")
    stamps: list[float] = []
    end = time.monotonic() + 2.5
    n = 0
    while time.monotonic() < end:
        d = holder.acquire(limit, f"r:{n}")
        n += 1
        if d.granted:
            stamps.append(d.at)
        else:
            time.sleep(min(d.wait, 0.05))
    assert max(sum(1 for t in stamps[i:] if t < s + 1.0) for i, s in enumerate(stamps)) <= 5
    assert len(stamps) >= 10  # and it keeps granting at its rate


def test_a_waiting_higher_priority_blocks_a_lower_one_and_each_waiter_gets_its_own_place(
    holder: Permits,
) -> None:
    limit = Limit("c", "", 1, None)
    assert holder.acquire(limit, "r:holder").granted
    low = [holder.acquire(limit, f"r:low{i}", 0) for i in range(3)]
    assert [d.ahead for d in low] == [0, 1, 2]  # told to come back one after the other
    assert low[2].wait > low[0].wait
    high = holder.acquire(limit, "r:high", 9)
    assert not high.granted
    assert high.ahead == 0
    holder.release(limit, "r:holder")
    assert not holder.acquire(limit, "r:low0", 0).granted  # the high one waits: no permit for low
    assert holder.acquire(limit, "r:high", 9).granted
    holder.release(limit, "r:high")
    assert holder.acquire(limit, "r:low2", 0).granted  # among equals, whoever comes first


def test_other_code_can_slow_or_pause_a_key(holder: Permits) -> None:
    limit = Limit("send", "example.com", None, "100/s")
    holder.slow_key("send", "example.com", "1/m", for_seconds=60)
    assert grants(holder, limit, ["r:1", "r:2"]) == [True, False]
    assert holder.acquire(Limit("send", "other.org", None, "100/s"), "r:3").granted  # other keys run
    holder.slow_key("send", "example.com", None, for_seconds=0)
    holder.pause_key("send", "example.com", datetime.now(UTC) + timedelta(minutes=5))
    paused = holder.acquire(limit, "r:4")
    assert not paused.granted
    assert paused.wait > 200
    (use,) = [u for u in holder.usage() if u.key == "example.com"]
    assert use.paused_until is not None
    assert use.waiting == 2
    holder.pause_key("send", "example.com", None)
    assert holder.acquire(limit, "r:4").granted  # the declared 100/s again


# ---------------------------------------------------------------------------------- the CLI


def test_campaignflow_limits_shows_each_limit_its_use_and_the_steps_waiting(worker: object) -> None:
    found = permits()
    assert found is not None
    holder = found[0]
    key = services.new_schema_name("k")
    limit = Limit(LIMITED_AGENT, key, 1, None)
    assert holder.acquire(limit, "run-a:hit").granted
    assert not holder.acquire(limit, "run-b:hit").granted
    try:
        shown = subprocess.run(
            [*CLI, "limits", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert shown.returncode == 0, shown.stderr
        rows = json.loads(shown.stdout)["limits"]
        (row,) = [r for r in rows if r["agent"] == LIMITED_AGENT and r["key"] == key]
        assert (row["leases"], row["waiting"], row["waiters"]) == (1, 1, ["run-b:hit"])
        assert (row["global_concurrency"], row["global_rate_limit"]) == (3, "20/s")
        table = subprocess.run([*CLI, "limits"], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert table.returncode == 0, table.stderr
        assert key in table.stdout
    finally:
        holder.release(limit, "run-a:hit")


# ------------------------------------------------------------------------------- priorities


def test_an_events_priority_is_checked_and_kept_on_its_run(worker: object) -> None:
    with pytest.raises(EventValidationError, match=r"priority: Input should be less than or equal to 9"):
        parse_event({"id": "e1", "type": "lead.created", "payload": {}, "priority": 12})
    handle = FlowRunner(engine(), flow([{"id": "a", "agent": "noop"}])).run({}, mode="async", priority=9)
    wait_for_run(handle.run_id)
    with sql_engine().connect() as conn:
        stored = conn.execute(sa.text("SELECT priority FROM run WHERE run_id = :r"), {"r": handle.run_id})
        assert stored.scalar_one() == 9
    assert [to_message(p) for p in (0, 9)] == [9, 0]  # Redis pops message priority 0 first
    assert [from_message(m) for m in (9, 0, None)] == [0, 9, 0]
