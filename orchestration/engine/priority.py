"""A run's priority: 0 (the default: marketing, bulk) to 9 (transactional, first).

Every message of the run carries it as its Celery priority. On Redis, kombu keeps one list per
priority step of each queue and a worker pops the lists in order, the first being priority 0, so
a run's priority ``p`` is sent as message priority ``9 - p`` (``to_message``): with
``priority_steps = 0..9`` (``bootstrap.configure_app``) each of the ten levels has its own list.
Tasks a step sends (the next step of a chain, a chord's join, a retry, a replacement) inherit it
(``task_inherit_parent_priority``). The worker reads it back (``from_message``) to ask the
cluster-wide limits for a permit at that priority.
"""

from __future__ import annotations

from typing import Any

#: The highest run priority; 0 is the lowest and the default.
MAX_PRIORITY = 9


def clamp(priority: int) -> int:
    return max(0, min(MAX_PRIORITY, int(priority)))


def to_message(priority: int) -> int:
    """The Celery message priority of a run of ``priority`` (Redis pops 0 first)."""
    return MAX_PRIORITY - clamp(priority)


def from_message(value: Any) -> int:
    """The run priority a message's priority stands for; a message without one is priority 0."""
    if not isinstance(value, int):
        return 0
    return MAX_PRIORITY - clamp(value)
