"""``campaignflow bench --guards``: what the sending guards cost one send, in the bench's sandbox.

Each case makes N guarded sends' worth of guard calls against the store, as ``deliver_email`` makes
them before the SMTP conversation (the suppression list, the caps for a marketing message, the
receiving domain's pause), and reports sends/s, the latency of one send's guard calls and the
process CPU per send. The contended case sends to one recipient from every thread (each waits for
the recipient's row lock); the spread one to a recipient per send.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from orchestration.engine.guards import StepGuards
from orchestration.ops.bench import percentile
from orchestration.settings import configure, get_settings
from orchestration.store import sql_engine

Progress = Callable[[int], None]
#: (case, marketing, threads, one recipient for all)
CASES = (
    ("transactional", False, 1, False),
    ("marketing", True, 1, False),
    ("marketing, 8 threads, spread", True, 8, False),
    ("marketing, 8 threads, one recipient", True, 8, True),
)
#: Caps high enough that no bench send is capped: every send pays the full count.
_CAPS = {"frequency_cap_day": 10**9, "frequency_cap_week": 10**9, "frequency_cap_campaign_day": 10**9}


@dataclass(frozen=True)
class GuardsResult:
    case: str
    n: int
    threads: int
    sends_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_send: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _one_send(recipient: str, marketing: bool) -> float:
    guards = StepGuards(str(uuid.uuid4()), "send", "bench")
    started = time.perf_counter()
    if guards.admit(recipient, marketing=marketing, timezone="Europe/Berlin") is not None:
        raise RuntimeError(f"bench send to {recipient} was stopped; the bench caps are too low")
    guards.domain_wait(recipient.rpartition("@")[2])
    return (time.perf_counter() - started) * 1000


def bench_case(
    case: str, marketing: bool, threads: int, one: bool, n: int, progress: Progress
) -> GuardsResult:
    latencies: list[float] = []
    lock = threading.Lock()
    per_thread = max(1, n // threads)

    def work(t: int) -> None:
        for i in range(per_thread):
            to = "one@bench.example" if one else f"r{t}-{i}-{uuid.uuid4().hex[:8]}@bench.example"
            ms = _one_send(to, marketing)
            with lock:
                latencies.append(ms)
            progress(1)

    cpu, wall = time.process_time(), time.perf_counter()
    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    done = len(latencies)
    return GuardsResult(
        case=case,
        n=done,
        threads=threads,
        sends_per_s=round(done / wall, 1),
        p50_ms=round(statistics.median(latencies), 2),
        p99_ms=round(percentile(latencies, 0.99), 2),
        cpu_ms_per_send=round(cpu * 1000 / done, 3),
    )


def bench_guards(n: int, progress: Progress) -> list[GuardsResult]:
    """Every case, N sends each, with caps on (none reached). Run inside the sandbox."""
    before = get_settings()
    configure(before.model_copy(update=_CAPS))
    try:
        with sql_engine().connect():  # the pool's first connection is not the first send's cost
            pass
        return [bench_case(c, marketing, threads, one, n, progress) for c, marketing, threads, one in CASES]
    finally:
        configure(before)
