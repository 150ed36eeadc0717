"""The cluster-wide limits across a Redis restart: a private ``redis-server`` (the compose file's
persistence, AOF) is killed with permits held and steps waiting, then started again on the same
port and data directory. The limits answer again (the scripts, lost with the server, are loaded
again), the permits the AOF kept run out within their lease, and nothing stays stuck."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from orchestration.engine.permits import Limit, Permits
from tests.faults.test_redis_restart import compose_redis_args
from tests.support.private_redis import NO_PERSISTENCE, PrivateRedis
from tests.support.wait import eventually

pytestmark = pytest.mark.crash

LEASE = 1.0


@pytest.fixture(params=["aof", "none"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PrivateRedis]:
    args = compose_redis_args() if request.param == "aof" else NO_PERSISTENCE
    found = PrivateRedis(tmp_path, args)
    found.start()
    yield found
    found.stop()


def test_limits_resume_after_a_redis_restart_and_nothing_stays_stuck(server: PrivateRedis) -> None:
    # Given two permits held and a step waiting for one
    client = redis.Redis.from_url(server.url(0), socket_timeout=2, socket_connect_timeout=2)
    holder = Permits(client, "", lease_seconds=LEASE)
    limit = Limit("send", "example.com", 2, None)
    assert [holder.acquire(limit, f"r:{i}").granted for i in range(3)] == [True, True, False]

    # When Redis is killed and comes back
    server.crash()
    with pytest.raises(redis.ConnectionError):
        holder.acquire(limit, "r:2")  # a step asking now is put back (tasks/agent_tasks.py)
    server.start()

    # Then the limits answer again, the permits held before it return within their lease, and
    # the limit holds as before: two at once
    eventually(lambda: holder.acquire(limit, "r:2").granted, 10 * LEASE, "a permit after the restart")
    assert holder.acquire(limit, "r:3").granted
    assert not holder.acquire(limit, "r:4").granted
    assert holder.release(limit, "r:2")
    assert holder.acquire(limit, "r:4").granted
    client.close()
