"""Cluster-wide limits on agent steps, held in Redis (the production Dispatcher).

- :class:`Permits`: acquire, release, renew; :meth:`Permits.slow_key` and :meth:`Permits.pause_key`
  for code that must slow one key down (a receiving domain that defers); :meth:`Permits.usage`.
- :class:`StepGate`: what an agent task asks before its try begins.
- :func:`permits`: this process's ``Permits`` on the broker's Redis.
"""

from orchestration.engine.permits.gate import (
    LIMITS_KWARG,
    THROTTLE_KWARG,
    StepGate,
    Throttle,
    Throttled,
    declared,
    granted_at,
    permits,
    reset,
)
from orchestration.engine.permits.holder import Decision, Limit, LimitUse, Permits

__all__ = [
    "LIMITS_KWARG",
    "THROTTLE_KWARG",
    "Decision",
    "Limit",
    "LimitUse",
    "Permits",
    "StepGate",
    "Throttle",
    "Throttled",
    "declared",
    "granted_at",
    "permits",
    "reset",
]
