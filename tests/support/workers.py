"""Real ``celery worker`` subprocesses for crash and time-limit tests: started in their own process
group, killed or stopped as a group, never left behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.wait import eventually
from tests.support.wiring import app

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    def __init__(self, name: str, queues: list[str], *, concurrency: int = 1, log_dir: Path) -> None:
        self.name = f"{name}@{socket.gethostname()}"
        self.queues = queues
        self.concurrency = concurrency
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, **env_extra: str) -> WorkerProcess:
        env = {
            **os.environ,
            # redeliver an unacked message 5 s after its worker died, checked every second
            "CAMPAIGNFLOW_VISIBILITY_TIMEOUT": "5",
            "CAMPAIGNFLOW_UNACKED_RESTORE_INTERVAL": "1",
            **env_extra,
        }
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "orchestration.app",
            "worker",
            "-P",
            "prefork",
            "-c",
            str(self.concurrency),
            "-Q",
            ",".join(self.queues),
            "-n",
            self.name,
            "--without-gossip",
            "--without-mingle",
            "-l",
            "INFO",
        ]
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        proc = self.proc
        assert proc is not None, "start() the worker first"

        def answers() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"worker {self.name} exited {proc.returncode}:\n{self.log()}")
            assert app.control.ping(destination=[self.name], timeout=0.5), f"no pong; log:\n{self.log()}"
            return True

        eventually(answers, timeout, f"worker {self.name} to answer a ping", interval=0)

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children): nothing is acked."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""


@contextmanager
def prefork_worker(name: str, queues: list[str], log_dir: Path) -> Iterator[WorkerProcess]:
    """A prefork worker subprocess on ``queues`` (it enforces time limits and loses children as
    production does), ready, and killed on exit."""
    # the pool takes ~5 s to report a dead child: a longer visibility timeout than the crash tests'
    # keeps Redis from handing the message out again meanwhile (production's is 2 h)
    proc = WorkerProcess(name, queues, log_dir=log_dir)
    proc.start(CAMPAIGNFLOW_VISIBILITY_TIMEOUT="60")
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.kill()


def run_script(env: dict[str, str], code: str, timeout: float = 60) -> str:
    """Run ``code`` (dedented) in a fresh Python process of the project with ``env``, for what the
    test process cannot do itself (it is wired to the session's broker); return its stdout."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()
