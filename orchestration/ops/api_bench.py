"""``campaignflow bench --api``: ``POST /v1/events`` against ``send_task`` ingest, in one run.

Both sides ingest the same events (a one-step no-op flow, routed for the run of the bench) with the
same number of clients, each sending one event and waiting for its run descriptor before the next
(a closed loop): the HTTP side gets the 202 from ``campaignflow api`` (a subprocess with its default
single worker process), the Celery side gets ``campaignflow.ingest_event``'s result from a worker.
Rounds alternate which side goes first and wait for every run of a round to end; each side's median
round counts, its latencies are those of every round.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from celery.backends.redis import ResultConsumer

from orchestration.control.manager import Route, add_route, remove_route
from orchestration.errors import CampaignflowError
from orchestration.names import ENGINE_QUEUE, INGEST_EVENT_TASK
from orchestration.ops.bench import percentile, sandbox_environment
from orchestration.runtime import current
from orchestration.store import sql_engine, stats

BENCH_FLOW: dict[str, Any] = {"name": "bench-ingest", "steps": [{"id": "s0", "agent": "noop"}]}
EVENT_TYPE = "bench.ingest"
#: The keys of ``campaignflow bench --api --json``, one object per side.
JSON_KEYS = ("side", "n", "clients", "events_per_s", "p50_ms", "p99_ms", "ratio")
Progress = Callable[[int], None]
#: A client: called with its own state and the event, it waits for the event's run id.
Call = Callable[[Any, dict[str, Any]], str]


@dataclass(frozen=True)
class SideResult:
    side: str
    n: int
    clients: int
    events_per_s: float
    p50_ms: float
    p99_ms: float
    ratio: float

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k in JSON_KEYS}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def bench_route() -> Iterator[Path]:
    """The bench flow in a directory for the API process, in this process's catalog, and routed."""
    with tempfile.TemporaryDirectory(prefix="cf-bench-") as tmp:
        flows_dir = Path(tmp)
        (flows_dir / "bench-ingest.json").write_text(json.dumps(BENCH_FLOW), encoding="utf-8")
        current().flows.add(BENCH_FLOW)
        route = add_route(Route(event_type=EVENT_TYPE, flow=BENCH_FLOW["name"]))
        try:
            yield flows_dir
        finally:
            assert route.id is not None
            remove_route(route.id)


def _get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


@contextmanager
def api_server(flows_dir: Path, token: str, timeout: float = 60.0) -> Iterator[int]:
    """``campaignflow api`` on a free loopback port, as deployed (one process); its port."""
    port = _free_port()
    env = {
        **os.environ,
        **sandbox_environment(current().settings),  # the bench's store and keys, as this process's
        "CAMPAIGNFLOW_API_TOKENS": f"bench:{token}:operate",
        "CAMPAIGNFLOW_FLOWS_DIR": str(flows_dir),
    }
    argv = [sys.executable, "-m", "orchestration.cli.main", "api", "--port", str(port)]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=log, start_new_session=True)
        try:
            _wait_up(proc, port, timeout, log)
            yield port
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)


def _wait_up(proc: subprocess.Popen[bytes], port: int, timeout: float, log: Any) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise CampaignflowError(
                f"campaignflow api exited {proc.returncode}: {log.read()[-2000:].decode()}"
            )
        try:
            if _get(port, "/healthz") == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise CampaignflowError(f"campaignflow api did not answer /healthz within {timeout:g} s")


def http_client(port: int, token: str) -> tuple[Callable[[], Any], Call]:
    """A keep-alive connection per client, posting one event per call."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def post(conn: http.client.HTTPConnection, event: dict[str, Any]) -> str:
        conn.request("POST", "/v1/events", json.dumps(event), headers)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 202:
            raise CampaignflowError(
                f"POST /v1/events answered {resp.status}: {body[:500].decode(errors='replace')}"
            )
        return str(json.loads(body)["run_id"])

    return lambda: http.client.HTTPConnection("127.0.0.1", port, timeout=30), post


def celery_client() -> tuple[Callable[[], Any], Call]:
    """``send_task`` of the public ingest task, waiting for its result."""
    app = current().app

    def send(_: Any, event: dict[str, Any]) -> str:
        result = app.send_task(INGEST_EVENT_TASK, kwargs={"event": event}, queue=ENGINE_QUEUE)
        value: dict[str, Any] = result.get(timeout=30, interval=0.005)
        if value.get("run_id") is None:
            raise CampaignflowError(f"campaignflow.ingest_event refused the event: {value.get('error')}")
        return str(value["run_id"])

    return lambda: None, send


def _release_backend() -> None:
    """This thread's result connection (``app.backend`` is per thread), closed before the thread ends."""
    consumer = getattr(current().app.backend, "result_consumer", None)
    if isinstance(consumer, ResultConsumer):
        consumer.subscribed_to.clear()
        consumer.stop()


def closed_loop(
    n: int, clients: int, client: tuple[Callable[[], Any], Call], progress: Progress
) -> tuple[float, list[float], list[str]]:
    """``n`` events through ``clients`` clients at once: events/s, latencies (ms), run ids."""
    make, call = client
    counter, lock = itertools.count(), threading.Lock()
    latencies: list[float] = []
    run_ids: list[str] = []
    failures: list[BaseException] = []

    def loop() -> None:
        state = make()
        try:
            while not failures and next(counter) < n:
                event = {"id": f"bench-{uuid.uuid4()}", "type": EVENT_TYPE, "payload": {}}
                t0 = time.perf_counter()
                run_id = call(state, event)
                took = (time.perf_counter() - t0) * 1000
                with lock:
                    latencies.append(took)
                    run_ids.append(run_id)
                    progress(1)
        except BaseException as exc:
            failures.append(exc)
        finally:
            if state is not None:
                state.close()
            _release_backend()

    threads = [threading.Thread(target=loop, name=f"bench-client-{i}") for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if failures:
        raise failures[0]
    return n / elapsed, latencies, run_ids


def _wait_runs(run_ids: list[str], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with sql_engine().connect() as conn:
            if stats.count_finished(conn, run_ids) >= len(run_ids):
                return
        if time.monotonic() > deadline:
            raise CampaignflowError(
                f"the bench's runs did not all end within {timeout:g} s; are workers running?"
            )
        time.sleep(0.05)


def bench_api(n: int, clients: int, rounds: int, progress: Progress) -> list[SideResult]:
    """Both sides, ``rounds`` rounds each (alternating which goes first); one result per side."""
    token = secrets.token_urlsafe(24)
    with bench_route() as flows_dir, api_server(flows_dir, token) as port:
        sides = {"POST /v1/events": http_client(port, token), "send_task ingest": celery_client()}
        for client in sides.values():  # warm up connections and caches
            _wait_runs(closed_loop(min(10, n), clients, client, lambda _: None)[2])
        rates: dict[str, list[float]] = {name: [] for name in sides}
        latencies: dict[str, list[float]] = {name: [] for name in sides}
        for r in range(rounds):
            order = list(sides) if r % 2 == 0 else list(reversed(sides))
            for name in order:
                rate, lat, run_ids = closed_loop(n, clients, sides[name], progress)
                rates[name].append(rate)
                latencies[name] += lat
                _wait_runs(run_ids)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    baseline = medians["send_task ingest"]
    return [
        SideResult(
            side=name,
            n=n,
            clients=clients,
            events_per_s=round(medians[name], 1),
            p50_ms=round(statistics.median(latencies[name]), 2),
            p99_ms=round(percentile(latencies[name], 0.99), 2),
            ratio=round(medians[name] / baseline, 3),
        )
        for name in sides
    ]
