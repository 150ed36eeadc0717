"""Redis restarts: the worker used to exit on one with ``Unrecoverable error: AttributeError("'NoneType'
object has no attribute 'hostname'")``: ``orchestration.engine.broker_guard`` says why and how it is
guarded; the first test replays the worker's cleanup step by step on a kombu connection."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu.common import ignore_errors
from kombu.connection import Connection
from kombu.entity import Exchange, Queue

from orchestration.engine import broker_guard
from tests.support.private_redis import PrivateRedis

pytestmark = pytest.mark.crash

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
