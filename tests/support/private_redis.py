"""A redis-server of one test alone, on a free port, that the test stops and starts again (the same
port): an outage that disturbs nobody else. Nothing is persisted (``--save ""``, no AOF), so a
restart comes back empty, as a crashed broker without persistence does."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.support.wait import eventually


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed; run: sudo bash scripts/setup-system.sh")
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(
            [*argv, "--dir", str(self.tmp)], stdout=subprocess.DEVNULL, start_new_session=True
        )
        eventually(self._accepts, 10, f"the private redis on port {self.port} to accept connections")

    def _accepts(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
        except OSError as exc:
            raise AssertionError(str(exc)) from exc
        return True

    def stop(self) -> None:
        """Stop it (SIGKILL: what it held is gone) and wait until its port refuses connections."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None
