"""``campaignflow api``: refuses to start without tokens (unless --no-auth), and serves the API over
real HTTP (uvicorn): health without a token, the runs list with one, a 10 MB body answered 413."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import OPERATE, TOKENS, assert_error
from tests.support.wait import eventually

CLI = [sys.executable, "-m", "orchestration.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k != "CAMPAIGNFLOW_API_TOKENS"}
    return {**base, **extra}


def test_refuses_to_start_without_tokens() -> None:
    bare = subprocess.run([*CLI, "api", "--port", "1"], env=env(), capture_output=True, text=True, timeout=60)
    assert bare.returncode == 2
    assert "CAMPAIGNFLOW_API_TOKENS is not set" in bare.stderr
    assert "--no-auth" in bare.stderr
    short = subprocess.run(
        [*CLI, "api"], env=env(CAMPAIGNFLOW_API_TOKENS="ci:short:operate"), capture_output=True, text=True
    )
    assert short.returncode == 2
    assert "entry 1 (ci): the token is shorter than 16" in short.stderr
    assert "short:" not in short.stderr.replace("ci:short", "")  # the token is never repeated
    both = subprocess.run(
        [*CLI, "api", "--no-auth"], env=env(CAMPAIGNFLOW_API_TOKENS=TOKENS), capture_output=True, text=True
    )
    assert both.returncode == 2
    assert "--no-auth: CAMPAIGNFLOW_API_TOKENS is set too" in both.stderr


def call(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


@pytest.fixture
def server(worker: object, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*CLI, "api", "--port", str(port)],
            env=env(CAMPAIGNFLOW_API_TOKENS=TOKENS),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"campaignflow api exited {proc.returncode}:\n{log.read_text()}")
        try:
            return call(f"{base}/healthz")[0] == 200
        except OSError:
            return False

    try:
        eventually(up, 60, "campaignflow api to answer /healthz", interval=0.2)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        # uvicorn shuts down gracefully, then ends by the signal it caught
        assert proc.wait(30) in (0, -signal.SIGTERM), log.read_text()
        assert "Application shutdown complete" in log.read_text()


def test_serves_over_http(server: str) -> None:
    assert call(f"{server}/readyz")[0] == 200
    status, body = call(f"{server}/v1/runs")
    assert status == 401
    assert_error(body, "unauthorized")
    assert call(f"{server}/v1/runs", headers=OPERATE) == (200, {"items": [], "next_cursor": None})
    big = b'{"id": "x", "type": "t", "payload": {"b": "' + b"x" * (10 * 1024 * 1024) + b'"}}'
    status, body = call(f"{server}/v1/events", big, {**OPERATE, "Content-Type": "application/json"})
    assert status == 413
    assert isinstance(assert_error(body, "body_too_large", "body")["rejected_id"], int)
