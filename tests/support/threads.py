"""Result connections of the threads that send tasks, released before they can leak.

Celery keeps one result backend per thread (``app.backend`` is thread-local), and the Redis one
subscribes to the result of every task its thread sends: the test's threads, and each thread of the
in-process worker's pool when a step sends the next one. A result unsubscribes when it is collected,
reconnecting if need be; collected late (its thread gone, or at exit), that makes a socket nothing
closes, a ResourceWarning (an error in this suite). Releasing a backend closes its connection and
leaves nothing subscribed, so a later collection has nothing to do.
"""

from __future__ import annotations

import gc
import sys
import warnings
from typing import Any

from celery.backends.redis import ResultConsumer

from tests.support.wiring import app


def _release(consumer: Any) -> None:
    consumer.subscribed_to.clear()
    consumer.stop()


def release_result_backend() -> None:
    """This thread's: call it at the end of a test thread that sent tasks."""
    consumer = getattr(app.backend, "result_consumer", None)
    if isinstance(consumer, ResultConsumer):
        _release(consumer)


def release_all_result_backends() -> None:
    """Every thread's, the in-process worker's included: call it once the worker has stopped."""
    for obj in gc.get_objects():  # garbage not yet collected included: the ended threads' backends
        if isinstance(obj, ResultConsumer):
            _release(obj)
    # Now harmless: nothing is left to unsubscribe. A client some thread dropped without closing is
    # collected here, at the end of the session, after every test has run: it is reported on stderr
    # (with its socket) instead of failing the last test's teardown. Leaks collected while tests
    # run still fail those tests (warnings are errors).
    with warnings.catch_warnings(record=True) as leftovers:
        warnings.simplefilter("always", ResourceWarning)
        gc.collect()
    for warning in leftovers:
        sys.stderr.write(f"note: collected at session end: {warning.message}\n")
