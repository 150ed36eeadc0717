"""A redis-server of one test alone, on a free port, so crashing it disturbs nobody else: the shared
Redis is never stopped, restarted or flushed by a test."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import redis

from tests.support.background import free_port
from tests.support.wait import eventually

#: No snapshots, no AOF: a crash loses everything the server held.
NO_PERSISTENCE = ("--save", "", "--appendonly", "no")


class PrivateRedis:
    """``redis-server`` on its own port and data directory (``tmp``), with ``args`` (persistence,
    memory policy). ``crash()`` is ``kill -9``; ``start()`` again reuses the port and the directory,
    so the server comes back with whatever its persistence kept."""

    def __init__(self, tmp: Path, args: tuple[str, ...] = NO_PERSISTENCE) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed; run: sudo bash scripts/setup-system.sh")
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.tmp), *self.args]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, start_new_session=True)

        def answers() -> bool:  # accepting connections and done loading its data
            try:
                with redis.Redis(port=self.port, socket_connect_timeout=0.2, socket_timeout=1) as client:
                    return bool(client.ping())
            except redis.RedisError as exc:
                raise AssertionError(str(exc)) from exc

        eventually(answers, 10, f"the private redis on port {self.port} to answer PING")

    def crash(self) -> None:
        """``kill -9`` the server (its whole process group, which is its own)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.crash()
