"""Redis restarts with runs in flight: ``kill -9`` of the broker, then the same server again on the
same port and data directory, with the compose file's persistence (AOF). The workers survive (the
test plays the compose restart policy and counts any worker that exits), every run ends terminal
(beat's sweeper, played by the test, re-drives a run whose message was dropped), and no side effect
happens twice. docs/deploy.md ("Redis restarts and dead workers") reads the figures.

The worker used to exit on such a restart with ``Unrecoverable error: AttributeError("'NoneType'
object has no attribute 'hostname'")``: ``orchestration.engine.broker_guard`` says why and how it is
guarded; the first test replays the worker's cleanup step by step on a kombu connection."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from kombu.common import ignore_errors
from kombu.connection import Connection
from kombu.entity import Exchange, Queue

from orchestration.engine import broker_guard
from orchestration.envelope import Envelope
from orchestration.names import ENGINE_QUEUE
from tests.support.agents import ledger
from tests.support.figures import figure
from tests.support.private_redis import PrivateRedis
from tests.support.runs import envelope, run_error
from tests.support.wait import eventually
from tests.support.wiring import registry
from tests.support.workers import ROOT, WorkerProcess

pytestmark = pytest.mark.crash

CYCLES = 10
RUNS_PER_CYCLE = 3
#: more slots than steps running at a kill: a free slot keeps a BRPOP pending, the crash's condition
AGENT_SLOTS = 6
#: an effect (counted in the ledger), a parallel block (a chord: its counter lives in Redis), an effect
FLOW = {
    "name": "redis-restarts",
    "steps": [
        {"id": "first", "agent": "effect", "input": {"sleep": 1.5}},
        {
            "kind": "parallel",
            "id": "fan",
            "members": [
                {"id": "left", "agent": "sleep", "input": {"seconds": 0.5}},
                {"id": "right", "agent": "sleep", "input": {"seconds": 0.5}},
            ],
        },
        {"id": "last", "agent": "effect", "input": {"sleep": 0.2}},
    ],
}
STEP_IDS = {"first", "left", "right", "fan", "last"}
EFFECT_STEPS = ("first", "last")


def compose_redis_args() -> tuple[str, ...]:
    """The compose file's ``redis-server`` flags (AOF, its fsync policy, no eviction); no snapshots,
    so what comes back after a crash is what the AOF kept."""
    command = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))["services"]["redis"][
        "command"
    ]
    assert command[0] == "redis-server"
    assert "--appendonly" in command
    return ("--save", "", *command[1:])


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    data = tmp_path / "redis"
    data.mkdir()
    server = PrivateRedis(data, compose_redis_args())
    server.start()
    yield server
    server.stop()


# ---------------------------------------------------------------- the cause, step by step


def test_a_task_channel_left_open_by_collect_closes_with_a_connection_error(tmp_path: Path) -> None:
    """What ``Consumer.on_connection_error_after_connected`` does after Redis died (``collect()``,
    then ``close()``), on a connection shaped like a worker's: a task channel with an unacknowledged
    message and a ``BRPOP`` pending, and a channel consuming an auto-delete fanout queue (remote
    control). Without the guard the last close raised ``AttributeError`` (kombu#582)."""
    assert broker_guard.installed()  # bootstrap puts it on
    server = PrivateRedis(tmp_path)
    server.start()
    # a long BRPOP, so that it is still pending when the server dies
    conn: Any = Connection(server.url(0), transport_options={"polling_interval": 30})  # type: ignore[no-untyped-call]
    try:
        steps = conn.SimpleQueue("steps", serializer="json")  # on the default channel, like the tasks
        tasks = conn.default_channel
        steps.put({"step": 1})
        in_flight = steps.get(timeout=5)
        assert not in_flight.acknowledged  # a step running, acks late
        with pytest.raises(TimeoutError):
            conn.drain_events(timeout=0.2)  # nothing more: a BRPOP waits on the task channel
        remote = Queue("remote", Exchange("remote", type="fanout"), auto_delete=True)  # type: ignore[no-untyped-call]
        conn.Consumer([remote], channel=conn.channel(), accept=["json"]).consume()  # remote control
        server.crash()

        with contextlib.suppress(Exception):  # as Celery does
            conn.collect(socket_timeout=1)
        assert not tasks.closed, "collect() closed the task channel: the scenario was not reproduced"
        assert tasks.connection is not None
        assert tasks.connection.client is None  # the transport is detached all the same
        with pytest.raises(AttributeError, match="hostname"):
            broker_guard.KOMBU_CONNPARAMS(tasks)  # kombu's own code cannot build a pool any more
        with pytest.raises(redis.exceptions.ConnectionError, match="released"):
            tasks._connparams()  # the guard: a connection error, which the cleanup ignores
        ignore_errors(conn, conn.close)  # type: ignore[no-untyped-call]  # the AttributeError escaped here
        assert tasks.closed
    finally:
        server.stop()


# ---------------------------------------------------------------- ten restarts under load


class Opener:
    """A process wired to the private broker that opens runs of :data:`FLOW` (``open N``) and runs
    the sweeper (``sweep STALL_SECONDS``) on request; the test process is wired to the session's."""

    CODE = """
import json, sys
from orchestration.control.sweeper import sweep
from orchestration.flows import parse_flow
from orchestration.orchestrators.base import FlowRunner
from tests.support.wiring import engine, registry

flow = parse_flow(json.loads(sys.argv[1]), registry)
for line in sys.stdin:
    command, arg = line.split()
    if command == "open":
        ids = [FlowRunner(engine(), flow).run({}, mode="async").run_id for _ in range(int(arg))]
    else:
        ids = sweep(engine(), stall_seconds=float(arg), max_redrives=3).redriven
    print(json.dumps(ids), flush=True)
"""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", self.CODE, json.dumps(FLOW)],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )

    def ask(self, command: str) -> list[str]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"the opener exited {self.proc.poll()}:\n{self.log.read_text(errors='replace')[-3000:]}"
        ids: list[str] = json.loads(line)
        return ids

    def close(self) -> None:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(30)
        self.proc.stdout.close()


@dataclass
class RestartPolicy:
    """``restart: unless-stopped``, played by the test: a worker that exited is started again, and
    counted with its exit code."""

    workers: list[WorkerProcess]
    env: dict[str, str]
    deaths: list[tuple[str, int]] = field(default_factory=list)

    def enforce(self) -> None:
        for worker in self.workers:
            assert worker.proc is not None
            code = worker.proc.poll()
            if code is not None:
                self.deaths.append((worker.name, code))
                worker.start(**self.env)


def log_since(worker: WorkerProcess, offset: int) -> str:
    with worker.log_path.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def noticed(policy: RestartPolicy, offsets: dict[str, int]) -> bool:
    """Every worker has seen the broker go (or has exited trying)."""
    for worker in policy.workers:
        assert worker.proc is not None
        if worker.proc.poll() is None:
            assert "Connection to broker lost" in log_since(worker, offsets[worker.name]), worker.name
    return True


def reconnected(policy: RestartPolicy, offsets: dict[str, int]) -> bool:
    """Every worker (restarted by the policy if it exited) is connected to the new server."""
    policy.enforce()
    for worker in policy.workers:
        assert "Connected to redis://" in log_since(worker, offsets[worker.name]), worker.name
    return True


def a_step_running(batch: list[str]) -> bool:
    return any(r.status == "running" for run_id in batch for r in envelope(run_id).records)


def live(run_ids: list[str]) -> list[str]:
    return [r for r in run_ids if not envelope(r).terminal]


def at_most_live(run_ids: list[str], most: int) -> bool:
    left = live(run_ids)
    assert len(left) <= most, (
        f"{len(left)} runs live (a step lost?), e.g. {envelope(left[0]).model_dump_json()}"
    )
    return True


def all_ended(run_ids: list[str]) -> bool:
    left = live(run_ids)
    assert not left, f"{len(left)} runs still live, e.g. {envelope(left[0]).model_dump_json()}"
    return True


def effect_counts(env: Envelope) -> tuple[int, int]:
    """(side effects beyond one per effect step, calls beyond one per effect step) of a run."""
    effects = int(ledger().get(f"effects:{env.run_id}") or 0)
    calls = sum(int(ledger().get(f"calls:{env.run_id}:{s}") or 0) for s in EFFECT_STEPS)
    done = sum(1 for s in EFFECT_STEPS if (r := env.record(s)) is not None and r.status == "succeeded")
    return max(0, effects - done), max(0, calls - done)


def test_workers_survive_ten_redis_restarts_and_every_run_ends(
    clean_db: str, aof_redis: PrivateRedis, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "CAMPAIGNFLOW_BROKER_URL": aof_redis.url(0),
        "CAMPAIGNFLOW_RESULT_BACKEND": aof_redis.url(1),
        "CAMPAIGNFLOW_REDIS_KEY_PREFIX": "",
    }
    app_env = {k: v for k, v in env.items() if k.startswith("CAMPAIGNFLOW_")}
    agent_queues = [q for q in registry.queue_names() if q != ENGINE_QUEUE]
    workers = [
        WorkerProcess("agents", agent_queues, concurrency=AGENT_SLOTS, log_dir=tmp_path),
        WorkerProcess("engine", [ENGINE_QUEUE], concurrency=2, log_dir=tmp_path),
    ]
    policy = RestartPolicy(workers, app_env)
    for worker in workers:
        worker.start(**app_env)
    opener = Opener(env, tmp_path / "opener.log")
    run_ids: list[str] = []
    in_flight: list[int] = []
    try:
        eventually(
            partial(reconnected, policy, dict.fromkeys([w.name for w in workers], 0)),
            60,
            "the workers to start",
        )
        for cycle in range(CYCLES):
            with contextlib.suppress(AssertionError):  # pacing only: a stalled run is the sweeper's
                eventually(partial(at_most_live, run_ids, RUNS_PER_CYCLE), 8, "earlier runs to end")
            batch = opener.ask(f"open {RUNS_PER_CYCLE}")
            run_ids += batch
            eventually(partial(a_step_running, batch), 30, f"a step of cycle {cycle}'s runs to run")
            in_flight.append(len(live(run_ids)))
            offsets = {w.name: w.log_path.stat().st_size for w in workers}
            aof_redis.crash()
            # let the workers clean up while Redis is down (where the old crash was); a worker whose
            # loop is blocked re-sending its heartbeat only notices once Redis is back
            with contextlib.suppress(AssertionError):
                eventually(partial(noticed, policy, offsets), 5, "the workers to lose the broker")
            aof_redis.start()
            eventually(partial(reconnected, policy, offsets), 60, "the workers to reconnect")

        stuck: list[str] = []
        try:
            eventually(lambda: all_ended(run_ids), 20, "every run to end")
        except AssertionError:  # a message was lost: the sweeper re-drives what made no progress
            stuck = live(run_ids)
            opener.ask("sweep 5")
            eventually(lambda: all_ended(run_ids), 60, "every run to end after the sweeper")
        policy.enforce()
    finally:
        opener.close()
        for worker in workers:
            worker.stop()

    envelopes = [envelope(r) for r in run_ids]
    failed = [e for e in envelopes if e.status != "succeeded"]
    counts = [effect_counts(e) for e in envelopes]
    # a step running at a restart is cancelled (worker_cancel_long_running_tasks_on_connection_loss)
    # and runs again: its record keeps the lost try
    lost_tries = sum(
        1 for e in envelopes for r in e.records for a in r.attempt_errors if a.type == "WorkerLost"
    )
    figure(
        f"redis kill -9 + restart ({' '.join(compose_redis_args())}): {CYCLES} cycles, "
        f"{len(run_ids)} runs opened, in flight at each kill {in_flight}"
    )
    figure(
        f"runs succeeded {len(envelopes) - len(failed)}, failed {len(failed)}, stuck (a message lost: "
        f"re-driven by the sweeper) {len(stuck)}, still live 0; duplicated effects {sum(c[0] for c in counts)}, "
        f"repeated effect calls {sum(c[1] for c in counts)}, lost tries {lost_tries}; worker deaths "
        f"{len(policy.deaths)} {policy.deaths}"
    )
    if failed:
        figure("failed runs: " + "; ".join(f"{run_error(e).type}: {run_error(e).message}" for e in failed))
    assert policy.deaths == [], [w.log() for w in workers]
    assert sum(c[0] for c in counts) == 0
    # a publish refused while Redis is down (a step's continuation) can fail a run: it says why
    for env_ in failed:
        assert run_error(env_).message
    for env_ in envelopes:
        if env_.status == "succeeded":
            assert {r.step_id for r in env_.records} == STEP_IDS
            assert all(r.status == "succeeded" for r in env_.records), env_.model_dump_json(indent=2)
