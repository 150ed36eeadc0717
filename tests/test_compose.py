"""compose.yaml: the committed file is what the registry renders, its shape is the production one,
and each service's command really works when run here against the local Redis and Postgres."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
import yaml
from celery import Celery

from celeryconfig import accept_content, result_accept_content, task_serializer
from orchestration.store import migrate, sql_engine
from tests.support import services
from tests.support.wait import eventually

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "compose.yaml"
CLI = [sys.executable, "-m", "orchestration.cli.main"]
APP_SERVICES_SKIP = {"redis", "postgres"}
T = TypeVar("T")


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """No CAMPAIGNFLOW_* from the test session (plugins, its broker, its schema) leaks in."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"
    env = {"PATH": path, "HOME": str(home), "LANG": "C.UTF-8"}
    env.update(extra)
    return env


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def registry_json(tmp_path: Path, expression: str) -> Any:
    """``expression`` over the registry as a deployment sees it (no test plugins)."""
    code = "import json; from orchestration.bootstrap import bootstrap; registry = bootstrap().registry; "
    code += f"print(json.dumps({expression}))"
    proc = subprocess.run(
        [sys.executable, "-c", code], env=clean_env(tmp_path), capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout)


def option(command: list[str], name: str) -> str | None:
    return command[command.index(name) + 1] if name in command else None


def test_committed_compose_is_what_the_registry_renders(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*CLI, "compose", "render", "--check", str(COMPOSE)],
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


def test_compose_shape(tmp_path: Path) -> None:
    doc = compose()
    svc: dict[str, Any] = doc["services"]
    pools: dict[str, int] = registry_json(tmp_path, "registry.pools()")
    consumers: dict[str, str] = {}
    for name, spec in svc.items():
        cmd = spec.get("command", [])
        if cmd[:2] == ["campaignflow", "worker"]:
            pool = option(cmd, "--pool")
            assert pool is not None, f"{name}: a worker service names its pool"
            queue = "orchestration" if pool == "orchestration" else f"agents.{pool}"
            assert queue not in consumers, f"{queue} consumed by {consumers.get(queue)} and {name}"
            consumers[queue] = name
            if pool != "orchestration":
                assert option(cmd, "-c") == str(pools[pool]), f"{name}: concurrency from the registry"
            # a worker that exits is started again; one that stops answering is reported unhealthy
            assert spec["restart"] == "unless-stopped", name
            assert f"inspect ping -d {pool}@$${{HOSTNAME}}" in spec["healthcheck"]["test"][1], name
    assert set(consumers) == {"orchestration", *(f"agents.{p}" for p in pools)}

    beats = [n for n, s in svc.items() if s.get("command", [])[:2] == ["campaignflow", "beat"]]
    assert beats == ["beat"]
    assert svc["beat"]["deploy"]["replicas"] == 1
    assert any(v.endswith("/var/lib/campaignflow") for v in svc["beat"]["volumes"])  # schedule kept

    flower = svc["flower"]
    assert flower["command"][:2] == ["campaignflow", "flower"]
    assert "--no-auth" not in flower["command"]
    assert flower["environment"]["CAMPAIGNFLOW_FLOWER_BASIC_AUTH"].startswith(
        "${CAMPAIGNFLOW_FLOWER_BASIC_AUTH:?"  # compose refuses to start without it
    )
    assert all(p.startswith("127.0.0.1:") for p in flower["ports"])
    # every app service (Flower and beat included) loads the same JSON-only celeryconfig
    assert accept_content == result_accept_content == ["json"]
    assert task_serializer == "json"

    api = svc["api"]
    assert api["command"][:2] == ["campaignflow", "api"]
    assert "--no-auth" not in api["command"]
    assert api["environment"]["CAMPAIGNFLOW_API_TOKENS"].startswith("${CAMPAIGNFLOW_API_TOKENS:?")
    assert all(p.startswith("127.0.0.1:") for p in api["ports"])
    assert "/healthz" in api["healthcheck"]["test"][-1]

    redis_cmd = " ".join(svc["redis"]["command"])
    assert "--appendonly yes" in redis_cmd
    assert "--maxmemory-policy noeviction" in redis_cmd
    assert "redis-cli" in svc["redis"]["healthcheck"]["test"]
    assert "pg_isready" in svc["postgres"]["healthcheck"]["test"][1]
    assert any(v.endswith("/var/lib/postgresql/data") for v in svc["postgres"]["volumes"])

    assert svc["migrate"]["command"] == ["campaignflow", "db", "upgrade"]
    assert svc["migrate"]["restart"] == "no"
    for name, spec in svc.items():
        if name in APP_SERVICES_SKIP or name == "migrate":
            continue
        deps = spec["depends_on"]
        assert deps["migrate"] == {"condition": "service_completed_successfully"}, name
        assert deps["redis"]["condition"] == deps["postgres"]["condition"] == "service_healthy", name
        assert spec["build"] == ".", name
        assert spec["env_file"] == [".env"], name


def test_env_example_covers_compose_and_no_env_is_committed() -> None:
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    keys = {line.split("=", 1)[0] for line in text.splitlines() if "=" in line and not line.startswith("#")}
    needed = {
        "CAMPAIGNFLOW_BROKER_URL",
        "CAMPAIGNFLOW_RESULT_BACKEND",
        "CAMPAIGNFLOW_DATABASE_URL",
        "CAMPAIGNFLOW_FLOWER_BASIC_AUTH",
        "CAMPAIGNFLOW_API_TOKENS",
        "POSTGRES_PASSWORD",
    }
    assert needed <= keys
    tracked = subprocess.run(["git", "ls-files", ".env"], cwd=ROOT, capture_output=True, text=True)
    assert tracked.stdout.strip() == ""
    assert (ROOT / "Dockerfile").is_file()


# ---------------------------------------------------------------- the commands, run here


class Stack:
    """The compose services' commands as local subprocesses, each in its own process group."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp, self.env = tmp, env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def local(self, command: list[str]) -> list[str]:
        cmd = [*CLI, *command[1:]] if command[0] == "campaignflow" else list(command)
        return [a.replace("/var/lib/campaignflow", str(self.tmp)) for a in cmd]

    def start(self, name: str, command: list[str]) -> None:
        with (self.tmp / f"{name}.log").open("wb") as log:  # the child keeps its own descriptor
            self.procs[name] = subprocess.Popen(
                self.local(command),
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(encoding="utf-8", errors="replace")

    def alive(self) -> None:
        for name, proc in self.procs.items():
            assert proc.poll() is None, f"{name} exited {proc.returncode}:\n{self.log(name)[-3000:]}"

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    services.check_services()
    schema = services.new_schema_name("cf_compose")
    services.create_schema(schema)
    prefix = f"{schema}:"
    env = clean_env(
        tmp_path,
        CAMPAIGNFLOW_BROKER_URL=services.redis_url(services.SESSION_REDIS_DBS[0]),
        CAMPAIGNFLOW_RESULT_BACKEND=services.redis_url(services.SESSION_REDIS_DBS[1]),
        CAMPAIGNFLOW_DATABASE_URL=services.schema_url(schema),
        CAMPAIGNFLOW_REDIS_KEY_PREFIX=prefix,
        CAMPAIGNFLOW_SWEEP_INTERVAL="1",
        CAMPAIGNFLOW_FLOWER_BASIC_AUTH="ops:compose-smoke",
        CAMPAIGNFLOW_API_TOKENS="ops:compose-smoke-token-0123:operate",
    )
    s = Stack(tmp_path, env)
    try:
        yield s
    finally:
        s.stop()
        services.clear_prefix(prefix)
        sql_engine(env["CAMPAIGNFLOW_DATABASE_URL"]).dispose()  # this process's connections to it
        services.drop_schema(schema)


def control_app(env: dict[str, str]) -> Celery:
    return Celery(
        "probe",
        broker=env["CAMPAIGNFLOW_BROKER_URL"],
        broker_transport_options={"global_keyprefix": env["CAMPAIGNFLOW_REDIS_KEY_PREFIX"]},
        accept_content=["json"],
    )


def wait_for(what: str, check: Callable[[], T], stack: Stack, timeout: float = 60.0) -> T:
    """``eventually(check)``, failing at once when a process of the stack has exited."""

    def probe() -> T:
        try:
            stack.alive()
        except AssertionError as exc:
            pytest.fail(str(exc))
        return check()

    return eventually(probe, timeout, what, interval=0.5)


def test_service_commands_run_a_lead_and_beat_ticks(stack: Stack, tmp_path: Path) -> None:
    svc = compose()["services"]
    url = stack.env["CAMPAIGNFLOW_DATABASE_URL"]

    # migrate: the one-shot job reaches head
    done = subprocess.run(stack.local(svc["migrate"]["command"]), env=stack.env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    assert migrate.at_head(url)

    # every worker service (one concurrency slot each here, to spare the CPU), then beat
    workers = {n: s for n, s in svc.items() if s.get("command", [])[:2] == ["campaignflow", "worker"]}
    for name, spec in workers.items():
        stack.start(name, [*spec["command"], "-c", "1"])
    stack.start("beat", svc["beat"]["command"])
    host = socket.gethostname()
    nodes = {f"{option(s['command'], '--pool')}@{host}" for s in workers.values()}
    probe = control_app(stack.env)
    try:
        wait_for(
            "every worker answering ping",
            lambda: nodes <= {n for r in probe.control.ping(timeout=1.0) for n in r},
            stack,
        )
    finally:
        probe.close()

    # a worker's compose healthcheck, as the container would run it
    hc = healthcheck(stack, "worker-crm")
    assert hc.returncode == 0, hc.stderr.decode()

    # a lead, through the public CLI: each step is consumed by its own pool's worker service
    lead = tmp_path / "lead.json"
    lead.write_text(
        json.dumps(
            {
                "id": "compose-smoke-1",
                "type": "lead.created",
                "payload": {
                    "email": "ada@acme-robotics.com",
                    "title": "VP Marketing",
                    "source": "demo_request",
                },
            }
        )
    )
    out = subprocess.run(
        [*CLI, "ingest", str(lead), "--wait", "--timeout", "60", "--json"],
        env=stack.env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    run_id = json.loads(out.stdout)["run_id"]
    shown = subprocess.run(
        [*CLI, "runs", "show", run_id, "--json"], env=stack.env, capture_output=True, text=True
    )
    envelope = json.loads(shown.stdout)
    assert envelope["status"] == "succeeded", envelope
    agents_pool = registry_json(tmp_path, "{a.name: a.pool for a in registry.agents()}")
    ran = [r for r in envelope["records"] if r["agent"] and r["status"] == "succeeded"]
    assert ran
    for record in ran:
        agent = record["agent"]
        if agent.startswith("engine."):  # branch, join, map: the engine's own tasks
            assert f"campaignflow.{agent}" in stack.log("worker-orchestration")
        else:
            assert f"campaignflow.agent.{agent}" in stack.log(f"worker-{agents_pool[agent]}")

    # beat ticks: it sends the sweeper, the orchestration worker runs it, the heartbeat is written
    engine = sa.create_engine(url)

    def swept() -> bool:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("select count(*) from heartbeat where name = 'sweeper'"))
            return int(rows.scalar_one()) > 0

    try:
        wait_for("the sweeper's heartbeat", swept, stack)
    finally:
        engine.dispose()
    assert "campaignflow.engine.sweep" in stack.log("beat")
    assert "campaignflow.engine.sweep" in stack.log("worker-orchestration")

    # the metrics service reads the same broker and store
    port = free_port()
    stack.start("metrics", [local_arg(a, port, 9808) for a in svc["metrics"]["command"]])
    body = wait_for("/metrics", lambda: http_get(f"http://127.0.0.1:{port}/metrics"), stack)
    assert body is not None
    assert "campaignflow_broker_up 1.0" in body
    assert "campaignflow_store_up 1.0" in body


def local_arg(arg: str, port: int, default_port: int) -> str:
    """A rendered argument as run here: a free port instead of the default, loopback only."""
    return {str(default_port): str(port), "0.0.0.0": "127.0.0.1"}.get(arg, arg)


def http_get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return str(resp.read().decode()) if resp.status == 200 else None
    except urllib.error.HTTPError as exc:
        exc.close()  # the error holds the response and its socket
        return None
    except OSError:
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_flower_service_requires_basic_auth(stack: Stack) -> None:
    command = compose()["services"]["flower"]["command"]
    port = free_port()
    stack.start("flower", [local_arg(a, port, 5555) for a in command])
    base = f"http://127.0.0.1:{port}"
    wait_for("Flower /healthcheck", lambda: http_get(f"{base}/healthcheck"), stack)
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(f"{base}/api/workers", timeout=5)
    denied.value.close()
    assert denied.value.code == 401
    token = b64encode(stack.env["CAMPAIGNFLOW_FLOWER_BASIC_AUTH"].encode()).decode()
    req = urllib.request.Request(f"{base}/api/workers", headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
        assert isinstance(json.loads(resp.read()), dict)


def test_api_service_serves_with_its_tokens(stack: Stack) -> None:
    command = compose()["services"]["api"]["command"]
    port = free_port()
    stack.start("api", [local_arg(a, port, 8080) for a in command])
    base = f"http://127.0.0.1:{port}"
    assert wait_for("the API's /healthz", lambda: http_get(f"{base}/healthz"), stack) is not None
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(f"{base}/v1/flows", timeout=5)
    with denied.value:
        assert denied.value.code == 401
        assert json.loads(denied.value.read())["error"]["code"] == "unauthorized"
    token = stack.env["CAMPAIGNFLOW_API_TOKENS"].split(":")[1]
    req = urllib.request.Request(f"{base}/v1/flows", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert "lead_handling" in {f["name"] for f in json.loads(resp.read())}


def healthcheck(stack: Stack, service: str) -> subprocess.CompletedProcess[bytes]:
    """The service's compose health check, run here as the container would run it."""
    test = compose()["services"][service]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    env = {**stack.env, "HOSTNAME": socket.gethostname()}
    return subprocess.run(["sh", "-c", test[1].replace("$$", "$")], env=env, capture_output=True, timeout=60)


def test_worker_healthcheck_fails_on_a_hung_or_dead_worker_which_exits_non_zero(stack: Stack) -> None:
    """The health check really asks the worker: it passes while the worker answers, fails while its
    processes are stopped (alive but hung) and once it is dead. A worker that stops on an error
    exits non-zero, so a restart policy or supervisor sees a failure: SIGINT ends it with Celery's
    failure code through the same exit path as an ``Unrecoverable error``."""
    svc = compose()["services"]
    done = subprocess.run(stack.local(svc["migrate"]["command"]), env=stack.env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    stack.start("worker-crm", [*svc["worker-crm"]["command"], "-c", "1"])
    node = f"crm@{socket.gethostname()}"
    probe = control_app(stack.env)
    try:
        wait_for("the crm worker to answer ping", lambda: probe.control.ping([node], timeout=1.0), stack)
    finally:
        probe.close()
    ok = healthcheck(stack, "worker-crm")
    assert ok.returncode == 0, ok.stderr.decode()

    worker = stack.procs["worker-crm"]
    os.killpg(worker.pid, signal.SIGSTOP)  # alive, but answering nothing
    try:
        hung = healthcheck(stack, "worker-crm")
    finally:
        os.killpg(worker.pid, signal.SIGCONT)
    assert hung.returncode != 0, "the health check passed on a stopped worker"
    again = healthcheck(stack, "worker-crm")
    assert again.returncode == 0, again.stderr.decode()

    os.killpg(worker.pid, signal.SIGINT)
    assert worker.wait(60) != 0, stack.log("worker-crm")[-3000:]
    dead = healthcheck(stack, "worker-crm")
    assert dead.returncode != 0, "the health check passed on a dead worker"
