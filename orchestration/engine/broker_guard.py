"""A guard around one bug of kombu's Redis transport that made workers exit when Redis restarted.

The cause (kombu 5.7.0, the same stack as kombu#582). When the worker loses Redis it cleans up the
old connection in ``Consumer.on_connection_error_after_connected``:

1. ``connection.collect()`` closes the channels one by one. The task channel is waiting on a
   ``BRPOP``, so its first ``close()`` stops at reading that reply (a connection error, ignored).
   Then a channel with an auto-delete fanout queue (remote control, gossip) fails to delete it on the
   dead socket, which ends the loop early: the task channel stays open. ``collect()`` then detaches
   the transport from its connection all the same (``transport.client = None``).
2. ``connection.close()`` closes the task channel again. It holds unacknowledged messages (steps in
   flight, acks late), so it restores them through a new connection pool, whose parameters come from
   ``transport.client.hostname``: ``AttributeError: 'NoneType' object has no attribute 'hostname'``.
   That is not a connection error, so Celery does not ignore it, and the worker stops with
   ``Unrecoverable error``.

It happens when the worker notices the loss on a remote-control (or gossip) socket while a slot is
free (a ``BRPOP`` pending) and a step runs: once in a few Redis restarts under light load. Turning
gossip and mingle off does not avoid it (the remote-control channel is enough), and
``worker_cancel_long_running_tasks_on_connection_loss`` is not involved (the crash comes before it).

The guard: a Redis channel whose connection is gone raises a connection error when asked for a new
pool, instead of the ``AttributeError``. Closing that channel then fails like every other close on a
dead connection, which Celery ignores; its unacknowledged messages stay in Redis' unacked hash and
come back after the visibility timeout, as they do when the close fails for any other reason. A step
that finishes after the reconnection acknowledges on its old channel and fails the same way (kombu
logs ``Couldn't ack``): its message comes back after the visibility timeout and runs again, which
a step's record makes harmless. :func:`install` is called by ``bootstrap``; it changes nothing
while a channel has its connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

#: kombu's own ``Channel._connparams``, kept to call it and for the test that shows the bug.
KOMBU_CONNPARAMS: Callable[..., Any] = kombu_redis.Channel._connparams
#: what the guard raises (a connection error, which Celery's cleanup ignores)
RELEASED = "the broker connection of this channel was released; it cannot connect again (kombu#582)"


def _connparams(self: Any, asynchronous: bool = False) -> Any:
    """``Channel._connparams`` (the parameters of a new connection pool), guarded."""
    transport = self.connection
    if transport is None or transport.client is None:
        raise RedisConnectionError(RELEASED)
    return KOMBU_CONNPARAMS(self, asynchronous=asynchronous)


def install() -> None:
    """Put the guard on kombu's Redis channel (once per process; calling it again does nothing)."""
    kombu_redis.Channel._connparams = _connparams  # type: ignore[method-assign]


def installed() -> bool:
    return bool(kombu_redis.Channel._connparams is _connparams)
