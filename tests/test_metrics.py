"""``campaignflow metrics``: the endpoint reflects real runs (store), step tries, durations and
retries (written by the workers through Celery signals) and queue depth (the broker's lists)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.messaging import Producer
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

import orchestration
from orchestration.cli.main import cli
from orchestration.control.manager import manager
from orchestration.control.run_control import retry_run
from orchestration.engine import step_metrics
from orchestration.engine.deadletters import REASONS
from orchestration.names import REDIS_PRIORITY_STEPS
from orchestration.ops.metrics import queue_keys
from orchestration.orchestrators.base import FlowRunner
from tests.support import services
from tests.support.background import CLI, ROOT, background, free_port, wait_http
from tests.support.flows import flow, run
from tests.support.runs import record, wait_for_run
from tests.support.wait import eventually
from tests.support.wiring import app, engine

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / "metrics.log"
    with background([*CLI, "metrics", "serve", "--port", str(port)], log) as proc:
        url = f"http://127.0.0.1:{port}/metrics"
        wait_http(url, proc, log)
        yield url


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as response:
        return parse(response.read().decode())


def lead(email: str) -> str:
    event = {"id": f"evt-{uuid.uuid4()}", "type": "lead.created", "payload": {"email": email, "name": "L"}}
    return manager().ingest_event(event).run_id


def test_endpoint_reflects_runs_steps_and_retries(worker: object, endpoint: str) -> None:
    before = scrape(endpoint)  # step metrics are cumulative over the session: compare deltas

    ok = [lead("ada@acme-robotics.com"), lead("linus@kernel-works.com")]
    bad = lead("nobody@mailer.invalid")  # enrich fails for good: the run fails
    assert [wait_for_run(r).status for r in ok] == ["succeeded", "succeeded"]
    assert wait_for_run(bad).status == "failed"
    flaky = run(flow([{"id": "once", "agent": "effect", "input": {"fail_first": 1}}], name="metrics-flaky"))
    assert flaky.status == "succeeded"
    assert record(flaky, "once").attempts == 2

    # a step's metrics are written after its task returns, so the last step of a run may be a
    # moment behind the run's terminal status: scrape until the workers' counts are complete
    expected = {
        ("campaignflow_step_duration_seconds_count", "enrich"): 3,
        ("campaignflow_step_duration_seconds_count", "score"): 2,
        ("campaignflow_step_duration_seconds_count", "effect"): 2,
    }

    def complete() -> Samples:
        after = scrape(endpoint)
        got = {k: value(after, k[0], agent=k[1]) - value(before, k[0], agent=k[1]) for k in expected}
        assert got == expected
        return after

    after = eventually(complete, 15, "the step counts of every run", interval=0.2)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert value(after, "campaignflow_store_up") == 1
    assert value(after, "campaignflow_broker_up") == 1
    # run counts come from the store (tables are empty at the start of the test)
    assert value(after, "campaignflow_runs_started_total", flow="lead_handling") == 3
    assert value(after, "campaignflow_runs_finished_total", flow="lead_handling", status="succeeded") == 2
    assert value(after, "campaignflow_runs_finished_total", flow="lead_handling", status="failed") == 1
    assert value(after, "campaignflow_runs_finished_total", flow="metrics-flaky", status="succeeded") == 1
    assert value(after, "campaignflow_runs_active", flow="lead_handling", status="running") == 0
    # step tries and durations come from the workers
    assert delta("campaignflow_step_tries_total", agent="enrich", status="failure") == 1
    assert delta("campaignflow_step_tries_total", agent="enrich", status="success") == 2
    assert delta("campaignflow_step_tries_total", agent="effect", status="retry") == 1
    assert delta("campaignflow_step_retries_total", agent="effect") == 1
    assert delta("campaignflow_step_retries_total", agent="enrich") == 0
    assert delta("campaignflow_step_duration_seconds_sum", agent="enrich") > 0
    buckets = sorted(
        (float(dict(labels)["le"]), v)
        for (name, labels), v in after.items()
        if name == "campaignflow_step_duration_seconds_bucket" and dict(labels)["agent"] == "enrich"
    )
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), "histogram buckets must be cumulative"
    assert counts[-1] == value(after, "campaignflow_step_duration_seconds_count", agent="enrich")
    for queue in (q.name for q in app.conf.task_queues):
        assert ("campaignflow_queue_depth", (("queue", queue),)) in after


def test_run_counters_never_go_down_and_every_gauge_reports_its_zeros(worker: object, endpoint: str) -> None:
    """A retried run and a purge lower no counter; a flow with no live run still has its 0 series."""
    retried = FlowRunner(engine(), flow(RETRIED, name="metrics-retried")).run({"fail_attempts": 99})
    assert wait_for_run(retried.run_id).status == "failed"
    assert run(flow([{"id": "a", "agent": "noop"}], name="metrics-ok")).status == "succeeded"
    first = scrape(endpoint)
    assert value(first, "campaignflow_runs_started_total", flow="metrics-retried") == 1
    assert value(first, "campaignflow_runs_finished_total", flow="metrics-retried", status="failed") == 1
    assert ("campaignflow_runs_finished_total", labels(flow="metrics-retried", status="succeeded")) in first

    assert retry_run(retried.run_id, {"fail_attempts": 0}) == "running"
    assert wait_for_run(retried.run_id).status == "succeeded"
    purged = CliRunner().invoke(cli, ["runs", "purge", "--older-than", "0s"])
    assert purged.stdout.startswith("purged 2 runs"), purged.output
    after = scrape(endpoint)
    counts = {
        (flow_name, status): value(after, "campaignflow_runs_finished_total", flow=flow_name, status=status)
        for flow_name in ("metrics-retried", "metrics-ok")
        for status in ("succeeded", "failed", "cancelled")
    }
    assert counts == {
        ("metrics-retried", "succeeded"): 1,
        ("metrics-retried", "failed"): 1,  # still counted after the retry and the purge
        ("metrics-retried", "cancelled"): 0,
        ("metrics-ok", "succeeded"): 1,
        ("metrics-ok", "failed"): 0,
        ("metrics-ok", "cancelled"): 0,
    }
    assert value(after, "campaignflow_runs_started_total", flow="metrics-retried") == 2  # and again
    assert value(after, "campaignflow_runs_started_total", flow="metrics-ok") == 1
    # gauges: every known flow (the catalog's, those with runs) and live status, 0 included
    for flow_name in ("lead_handling", "metrics-retried", "metrics-ok"):
        for status in ("queued", "running", "waiting"):
            assert after[("campaignflow_runs_active", labels(flow=flow_name, status=status))] == 0
    for reason in REASONS:
        assert after[("campaignflow_dead_letters", labels(reason=reason))] == 0
    [info] = [labels_ for name, labels_ in after if name == "campaignflow_build_info"]
    assert dict(info)["version"] == orchestration.__version__
    assert after[("campaignflow_build_info", info)] == 1
    # one label name for a status, on every metric that has one
    names = {k for name, labels_ in after for k, _ in labels_ if not name.startswith("campaignflow_build")}
    assert "state" not in names
    assert "status" in names


def labels(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(values.items()))


RETRIED = [
    {"id": "b", "agent": "fail", "input": {"permanent": True, "fail_attempts": "$payload.fail_attempts"}}
]


def test_queue_depth_counts_every_priority_under_the_key_prefix(database: str) -> None:
    """Messages published by kombu itself (plain and priority lists) under a prefix of their own."""
    prefix = f"{services.new_schema_name('cf_metrics')}:"
    queues = [q.name for q in app.conf.task_queues]
    target, other = queues[-1], queues[0]
    url = app.conf.broker_url
    try:
        # kombu's constructors and publish() carry no annotations
        options = {"global_keyprefix": prefix, "priority_steps": list(REDIS_PRIORITY_STEPS)}  # the app's
        with Connection(url, transport_options=options) as conn:  # type: ignore[no-untyped-call]
            producer = Producer(conn.default_channel)  # type: ignore[no-untyped-call]
            for name, priorities in ((target, (0, 5, 9)), (other, (0,))):
                exchange = Exchange(name, type="direct")  # type: ignore[no-untyped-call]
                queue = Queue(name, exchange, routing_key=name, max_priority=9)  # type: ignore[no-untyped-call]
                for priority in priorities:
                    producer.publish(  # type: ignore[no-untyped-call]
                        {"n": priority},
                        routing_key=name,
                        exchange=queue.exchange,
                        declare=[queue],
                        priority=priority,
                        serializer="json",
                    )
        with redis.Redis.from_url(url) as raw:
            # kombu's layout: the plain list, then one list per priority step (every level its own)
            assert [raw.llen(k) for k in queue_keys(target, prefix)] == [1, 0, 0, 0, 0, 1, 0, 0, 0, 1]

        env = {**os.environ, "CAMPAIGNFLOW_REDIS_KEY_PREFIX": prefix}
        shown = subprocess.run(
            [*CLI, "metrics", "show"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert shown.returncode == 0, shown.stderr
        samples = parse(shown.stdout)
        assert value(samples, "campaignflow_queue_depth", queue=target) == 3
        assert value(samples, "campaignflow_queue_depth", queue=other) == 1
        assert sum(value(samples, "campaignflow_queue_depth", queue=q) for q in queues) == 4
    finally:
        services.clear_prefix(prefix)


def test_step_metrics_are_summed_in_memory_and_sent_whole(worker: object) -> None:
    """Tries counted by many threads, and by a forked child, arrive exactly once each."""

    conn = step_metrics.client()
    assert conn is not None
    agent = f"batch-{uuid.uuid4().hex[:8]}"
    step_metrics.flush()

    def count(n: int) -> None:
        for i in range(n):
            step_metrics.record_try(agent, "SUCCESS" if i % 2 else "RETRY", 0.02)

    threads = [threading.Thread(target=count, args=(250,)) for _ in range(4)]
    for t in threads:
        t.start()
    step_metrics.record_retry(agent)
    pid = os.fork()
    if pid == 0:  # the child counts its own tries and sends them when it exits
        try:
            signal.alarm(20)  # a child stuck on a lock taken before the fork dies instead of hanging
            count(10)
            step_metrics.flush()
        finally:
            os._exit(0)
    for t in threads:
        t.join()
    assert os.waitpid(pid, 0)[1] == 0
    step_metrics.flush()

    got = step_metrics.read(conn)[agent]
    assert got.tries == {"success": 505, "retry": 505}
    assert got.retries == 1
    assert sum(got.buckets) == 1010
    assert got.buckets[step_metrics._bucket(0.02)] == 1010
    assert got.seconds == pytest.approx(1010 * 0.02)


def test_step_metrics_reach_redis_without_an_explicit_flush(worker: object) -> None:
    """The background sender: a try shows up within a few flush intervals."""

    conn = step_metrics.client()
    assert conn is not None
    agent = f"bg-{uuid.uuid4().hex[:8]}"
    step_metrics.record_try(agent, "SUCCESS", 0.5)
    eventually(
        lambda: agent in step_metrics.read(conn),
        10 * step_metrics.FLUSH_SECONDS,
        f"{agent}'s step metrics in Redis",
        interval=0.1,
    )
    assert step_metrics.read(conn)[agent].tries == {"success": 1}


def test_step_metrics_wait_while_redis_is_away(worker: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flush that cannot reach Redis keeps the counts; the next one sends them."""

    conn = step_metrics.client()
    assert conn is not None
    agent = f"away-{uuid.uuid4().hex[:8]}"
    step_metrics.flush()
    with redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5) as unreachable:
        monkeypatch.setattr(step_metrics, "client", lambda: unreachable)
        step_metrics.record_try(agent, "SUCCESS", 0.3)
        step_metrics.flush()  # connection refused: nothing sent, nothing lost
    assert agent not in step_metrics.read(conn)
    monkeypatch.setattr(step_metrics, "client", lambda: conn)
    step_metrics.record_try(agent, "FAILURE", 0.3)
    step_metrics.flush()
    got = step_metrics.read(conn)[agent]
    assert got.tries == {"success": 1, "failure": 1}
    assert sum(got.buckets) == 2
