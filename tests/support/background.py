"""Long-running subprocesses for the operations tests (Flower, the metrics endpoint, a worker with
its own key prefix): each starts in its own process group and is stopped as a group, never left."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.wait import eventually

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from orchestration.cli.main import main; main()"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def background(
    argv: list[str],
    log: Path,
    env: Mapping[str, str | None] | None = None,
    *,
    err: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` with stdout (and stderr, unless ``err`` names its own file) in ``log``; SIGTERM
    its process group on exit (SIGKILL after 20 s). ``env`` adds variables (``None`` removes one)."""
    full_env = {**os.environ, **(env or {})}
    with log.open("ab") as out, (err or log).open("ab") as errors:
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={k: v for k, v in full_env.items() if v is not None},
            stdout=out,
            stderr=errors if err else subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process started in a session of its own, with its children: SIGTERM to the group,
    then SIGKILL if it has not exited within 20 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    """Wait until ``url`` answers at all (any HTTP status), failing early if the process died."""

    def answers() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"{url}: process exited {proc.returncode}:\n{tail(log)}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
        except urllib.error.HTTPError as exc:
            exc.close()  # the error holds the response and its socket
            return True  # an HTTP status is an answer
        except OSError as exc:
            raise AssertionError(f"{exc}; log:\n{tail(log)}") from exc
        return True

    eventually(answers, timeout, f"{url} to answer", interval=0.2)


def tail(log: Path, chars: int = 4000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else ""
