"""``campaignflow limits``: every cluster-wide limit declared (agents, ``CAMPAIGNFLOW_LIMITS``) and
what each one holds now in Redis (leases, rate tokens, waiting steps)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from orchestration.engine.permits import Limit, declared, permits
from orchestration.errors import ConfigurationError
from orchestration.runtime import current


@dataclass(frozen=True)
class LimitRow:
    """One limit: what is declared for its agent, and its use for one key value."""

    agent: str
    key: str
    limit_key: str | None
    global_concurrency: int | None
    global_rate_limit: str | None
    leases: int
    waiting: int
    tokens: float | None
    hold_seconds: float | None
    rate_override: float | None
    paused_until: float | None
    waiters: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def limit_rows() -> list[LimitRow]:
    """Every declared limit (one row even when unused), then every key in use."""
    found = permits()
    if found is None:
        raise ConfigurationError(
            "campaignflow limits: the cluster-wide limits live in Redis; set CAMPAIGNFLOW_BROKER_URL=redis://..."
        )
    holder, _keeper = found
    decls = {spec.name: declared(spec, None) for spec in current().registry.agents()}
    limits = {
        name: Limit(name, "", d.global_concurrency, d.global_rate_limit)
        for name, d in decls.items()
        if d.limited
    }
    rows: list[LimitRow] = []
    used = holder.usage(limits)
    seen = {u.agent for u in used}
    for use in used:
        d = decls.get(use.agent)
        rows.append(
            LimitRow(
                agent=use.agent,
                key=use.key,
                limit_key=d.limit_key if d else None,
                global_concurrency=d.global_concurrency if d else None,
                global_rate_limit=d.global_rate_limit if d else None,
                leases=use.leases,
                waiting=use.waiting,
                tokens=use.tokens,
                hold_seconds=use.hold_seconds,
                rate_override=use.rate_override,
                paused_until=use.paused_until,
                waiters=use.waiters,
            )
        )
    for name in sorted(set(limits) - seen):
        d = decls[name]
        rows.append(
            LimitRow(
                name,
                "",
                d.limit_key,
                d.global_concurrency,
                d.global_rate_limit,
                0,
                0,
                None,
                None,
                None,
                None,
                [],
            )
        )
    return sorted(rows, key=lambda r: (r.agent, r.key))
