"""``campaignflow limits``: each cluster-wide limit, its current use and the steps waiting for it."""

from __future__ import annotations

from datetime import UTC, datetime

from orchestration.cli.common import JSON_OPTION, print_json, print_table


def _num(value: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def limits(as_json: bool = JSON_OPTION) -> None:
    """Show each cluster-wide limit (per agent and key): leases held, rate tokens, waiting steps."""
    from orchestration.ops.limits import limit_rows

    rows = limit_rows()
    if as_json:
        print_json({"limits": [r.as_dict() for r in rows]})
        return
    table = []
    for r in rows:
        paused = datetime.fromtimestamp(r.paused_until, UTC).strftime("%H:%M:%S") if r.paused_until else "-"
        table.append(
            [
                r.agent,
                r.key or ("-" if r.limit_key is None else "(none)"),
                f"{r.leases}/{r.global_concurrency}" if r.global_concurrency else "-",
                (r.global_rate_limit or "-") + (f" (now {r.rate_override:.3g}/s)" if r.rate_override else ""),
                _num(r.tokens),
                str(r.waiting),
                _num(r.hold_seconds, "{:.3f}s"),
                paused,
                ", ".join(r.waiters[:3]) + (" ..." if len(r.waiters) > 3 else ""),
            ]
        )
    print_table(
        ["agent", "key", "leases", "rate", "tokens", "waiting", "held for", "paused until", "steps waiting"],
        table,
    )
