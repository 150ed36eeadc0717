"""Ingest: routing, idempotency under concurrency (threads and processes), rejected events and replay."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from orchestration.cli.main import cli
from orchestration.control.manager import Route, add_route, file_routes, manager
from orchestration.control.manager import manager as process_manager
from orchestration.control.rejected import EventRejectedError, list_rejected, replay
from orchestration.errors import ConfigurationError, UnknownFlowError
from orchestration.settings import get_settings
from orchestration.store import db, sql_engine
from tests.support.figures import figure
from tests.support.runs import wait_for_run
from tests.support.threads import release_result_backend
from tests.support.wiring import flows

NOOP_FLOW = {"name": "ingest-noop", "input_required": ["who"], "steps": [{"id": "a", "agent": "noop"}]}
ROOT = Path(__file__).resolve().parents[1]


def noop_event(event_id: str, **payload: Any) -> dict[str, Any]:
    return {"id": event_id, "type": "test.noop", "payload": {"who": "ada", **payload}}


@pytest.fixture
def noop_route(worker: object) -> Route:
    flows().add(NOOP_FLOW)
    return add_route(Route(event_type="test.noop", flow="ingest-noop"))


def count(sql: str, **params: Any) -> int:
    with sql_engine().connect() as conn:
        return int(conn.execute(sa.text(sql), params).scalar_one())


def test_same_event_twice_gives_one_run_marked_duplicate(noop_route: Route) -> None:
    first = manager().ingest_event(noop_event("evt-twice"))
    second = manager().ingest_event(noop_event("evt-twice"))
    assert (first.duplicate, second.duplicate) == (False, True)
    assert second.run_id == first.run_id
    env = wait_for_run(first.run_id)
    assert env.status == "succeeded"
    assert env.flow == "ingest-noop"
    assert env.metadata.orchestrator == "flow"
    assert env.metadata.extra["event_type"] == "test.noop"
    assert count("select count(*) from run where event_id = 'evt-twice'") == 1


def test_hundred_concurrent_ingests_from_threads_give_one_run(noop_route: Route) -> None:
    barrier, results = threading.Barrier(100), []
    lock = threading.Lock()

    def go() -> None:
        barrier.wait()
        try:
            handle = manager().ingest_event(noop_event("evt-threads"))
        finally:
            release_result_backend()
        with lock:
            results.append(handle)

    threads = [threading.Thread(target=go) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 100
    assert len({h.run_id for h in results}) == 1
    assert sum(not h.duplicate for h in results) == 1
    assert count("select count(*) from run where event_id = 'evt-threads'") == 1
    assert wait_for_run(results[0].run_id).status == "succeeded"
    figure("ingest threads: 100 concurrent ingests of one event id -> 1 run, 99 duplicates")


def _ingest_in_process(barrier: Any, event_id: str, threads: int, out: Any) -> None:
    """Runs in a spawned process: ``threads`` threads ingest the same event at once."""

    # a small pool per process, so 100 callers fit in the server's connection limit (they queue)
    url = get_settings().effective_database_url()
    small = {"pool_size": 3, "max_overflow": 0, "pool_timeout": 120}
    db._engines[(os.getpid(), url, False)] = sa.create_engine(url, **small)
    db._engines[(os.getpid(), url, True)] = sa.create_engine(url, isolation_level="AUTOCOMMIT", **small)

    local = threading.Barrier(threads)
    handles: list[tuple[str, bool] | str] = []

    def go() -> None:
        local.wait()
        try:
            h = process_manager().ingest_event(noop_event(event_id))
            handles.append((h.run_id, h.duplicate))
        except Exception as exc:  # reported to the test, which fails on it
            handles.append(f"{type(exc).__name__}: {exc}")

    barrier.wait()
    workers = [threading.Thread(target=go) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    out.put(handles)


def test_hundred_concurrent_ingests_from_processes_give_one_run(noop_route: Route, tmp_path: Path) -> None:
    # the route names a flow; each spawned process loads it from CAMPAIGNFLOW_FLOWS_DIR
    (tmp_path / "ingest-noop.json").write_text(json.dumps(NOOP_FLOW), encoding="utf-8")
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(10), ctx.Queue()
    os.environ["CAMPAIGNFLOW_FLOWS_DIR"] = str(tmp_path)
    try:
        procs = [
            ctx.Process(target=_ingest_in_process, args=(barrier, "evt-procs", 10, out)) for _ in range(10)
        ]
        for p in procs:
            p.start()
        handles = [h for _ in procs for h in out.get(timeout=120)]
        for p in procs:
            p.join(timeout=60)
    finally:
        os.environ.pop("CAMPAIGNFLOW_FLOWS_DIR", None)
    assert [p.exitcode for p in procs] == [0] * 10
    assert [h for h in handles if isinstance(h, str)] == []
    assert len(handles) == 100
    assert len({run_id for run_id, _ in handles}) == 1
    assert sum(not dup for _, dup in handles) == 1
    assert count("select count(*) from run where event_id = 'evt-procs'") == 1
    figure("ingest processes: 10 processes x 10 threads, one event id -> 1 run, 99 duplicates")


def test_bad_shape_no_route_and_bad_payload_are_stored_not_dropped(worker: object) -> None:
    flows().add(NOOP_FLOW)
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"id": "evt-shape", "type": "Bad Type", "payload": []}, "invalid_event", "type:"),
        ({"id": "evt-noroute", "type": "nobody.listens", "payload": {}}, "no_route", "nobody.listens"),
        (noop_event("evt-badpayload", who=""), "invalid_payload", "payload.who"),
    ]
    add_route(Route(event_type="test.noop", flow="ingest-noop"))
    for raw, kind, fragment in cases:
        with pytest.raises(EventRejectedError) as info:
            manager().ingest_event(raw)
        assert info.value.kind == kind
        assert fragment in str(info.value)
        assert f"rejected event {info.value.rejected_id}" in str(info.value)
    stored = {r.event_id: r for r in list_rejected()}
    assert set(stored) == {"evt-shape", "evt-noroute", "evt-badpayload"}
    assert stored["evt-noroute"].raw == cases[1][0]
    assert stored["evt-noroute"].reason.startswith("no_route: type: no route for event type 'nobody.listens'")
    assert any(p.startswith("payload:") for p in stored["evt-shape"].problems)
    assert count("select count(*) from run") == 0
    # the same body again while still rejected updates that row instead of adding another
    with pytest.raises(EventRejectedError) as again:
        manager().ingest_event(cases[1][0])
    assert again.value.rejected_id == stored["evt-noroute"].id


def test_replay_after_adding_a_route_and_with_a_corrected_body(worker: object) -> None:
    flows().add(NOOP_FLOW)
    with pytest.raises(EventRejectedError) as no_route:
        manager().ingest_event(noop_event("evt-replay-route"))
    with pytest.raises(EventRejectedError) as still:
        replay(no_route.value.rejected_id, manager=manager())  # nothing fixed yet: rejected again, same row
    assert still.value.rejected_id == no_route.value.rejected_id
    add_route(Route(event_type="test.noop", flow="ingest-noop"))
    handle = replay(no_route.value.rejected_id, manager=manager())
    assert wait_for_run(handle.run_id).status == "succeeded"

    with pytest.raises(EventRejectedError) as bad:
        manager().ingest_event(noop_event("evt-replay-body", who=None))
    fixed = noop_event("evt-replay-body", who="grace")
    handle2 = replay(bad.value.rejected_id, event=fixed, manager=manager())
    env = wait_for_run(handle2.run_id)
    assert env.status == "succeeded"
    assert env.metadata.payload["who"] == "grace"
    replayed = {r.id: r for r in list_rejected("replayed")}
    assert replayed[bad.value.rejected_id].replay_run_id == handle2.run_id
    assert replayed[bad.value.rejected_id].raw == fixed
    assert list_rejected() == []


def test_campaign_route_wins_and_routes_file_is_read(worker: object, tmp_path: Path) -> None:
    flows().add(NOOP_FLOW)
    flows().add({**NOOP_FLOW, "name": "ingest-vip"})
    add_route(Route(event_type="test.noop", flow="ingest-noop"))
    add_route(Route(event_type="test.noop", campaign="vip", flow="ingest-vip"))
    plain = manager().ingest_event(noop_event("evt-plain"))
    vip = manager().ingest_event({**noop_event("evt-vip"), "campaign": "vip"})
    assert wait_for_run(plain.run_id).flow == "ingest-noop"
    assert wait_for_run(vip.run_id).flow == "ingest-vip"

    path = tmp_path / "routes.yaml"
    path.write_text("routes:\n  - {event_type: a.b, flow: ingest-noop}\n", encoding="utf-8")
    assert file_routes(path) == (Route(event_type="a.b", flow="ingest-noop"),)
    path.write_text("- {event_type: a.b}\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="exactly one of orchestrator or flow"):
        file_routes(path)
    with pytest.raises(UnknownFlowError, match="unknown flow 'no-such-flow'"):
        add_route(Route(event_type="a.b", flow="no-such-flow"))


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli.main", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_cli_ingest_rejects_with_one_line_and_replay_with_event_file(worker: object, tmp_path: Path) -> None:
    bad = {"id": "evt-cli", "type": "cli.nothing", "payload": {"who": "x"}}
    result = _cli("ingest", "-", stdin=json.dumps(bad))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: event evt-cli rejected (no_route)"), result.stderr
    listed = json.loads(_cli("rejected", "list", "--json").stdout)
    assert [r["event_id"] for r in listed] == ["evt-cli"]
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps({**bad, "type": "lead.created", "payload": {"email": "a@b.co"}}), "utf-8")
    out = _cli("rejected", "replay", str(listed[0]["id"]), "--event", str(fixed), "--sync", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "succeeded"
    again = _cli("rejected", "replay", str(listed[0]["id"]))
    assert again.returncode == 1
    assert "already replayed" in again.stderr


def test_cli_routes_add_list_remove(worker: object) -> None:

    flows().add(NOOP_FLOW)
    runner = CliRunner()
    added = runner.invoke(cli, ["routes", "add", "test.noop", "--flow", "ingest-noop", "--campaign", "vip"])
    assert added.exit_code == 0
    assert added.stdout.startswith("route ")
    assert "test.noop -> flow ingest-noop" in added.stdout
    both = runner.invoke(cli, ["routes", "add", "x.y", "--flow", "a", "--orchestrator", "b"])
    assert both.exit_code == 1
    assert "give exactly one of orchestrator or flow" in both.stderr
    listed = json.loads(runner.invoke(cli, ["routes", "list", "--json"]).stdout)
    assert listed[0] == {
        "event_type": "test.noop",
        "orchestrator": None,
        "campaign": "vip",
        "flow": "ingest-noop",
        "resume": None,
        "id": listed[0]["id"],
        "source": "database",
    }
    assert {"event_type": "lead.created", "source": "built-in"}.items() <= listed[1].items()
    assert runner.invoke(cli, ["routes", "remove", str(listed[0]["id"])]).exit_code == 0
    assert json.loads(runner.invoke(cli, ["routes", "list", "--json"]).stdout)[0]["source"] == "built-in"
