"""The Prometheus collector behind ``campaignflow metrics serve``: everything is read at scrape time,
from the run store (run counters, live runs, dead letters, the outbox backlog), the broker (queue
depth) and the workers' step metrics (:mod:`orchestration.engine.step_metrics`), so one endpoint
covers every process of a deployment.

Counters only go up: runs started and finished come from ``run_counter`` (counted by the database
in the transaction of each transition), so a retried or purged run never lowers them. Every gauge
reports each label value it knows (the catalog's flows, every queue, every dead-letter reason), 0
included, so a series never disappears when its count drops to nothing.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime

import celery
import redis
import sqlalchemy as sa
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

import orchestration
from orchestration.engine import step_metrics as steps
from orchestration.engine.deadletters import REASONS
from orchestration.names import (
    KOMBU_UNACKED_KEY,
    OPEN_RUN_STATUSES,
    REDIS_PRIORITY_STEPS,
    TERMINAL_RUN_STATUSES,
)
from orchestration.runtime import current
from orchestration.settings import get_settings
from orchestration.store import counters, deadletters, outbox, sql_engine, stats, waits

log = logging.getLogger(__name__)

#: kombu's Redis transport keeps priorities 1-9 of a queue in lists named ``<queue>\x06\x16<n>``.
PRIORITY_SEP = "\x06\x16"
PRIORITY_STEPS = REDIS_PRIORITY_STEPS[1:]


def queue_keys(queue: str, key_prefix: str = "") -> list[str]:
    """The Redis lists that hold one queue's messages: the plain one and one per priority step."""
    return [key_prefix + queue, *(f"{key_prefix}{queue}{PRIORITY_SEP}{p}" for p in PRIORITY_STEPS)]


def build_info() -> Metric:
    """``campaignflow_build_info{version, celery, python} 1``: what this deployment runs."""
    info = GaugeMetricFamily(
        "campaignflow_build_info",
        "Always 1; the labels say which campaignflow, Celery and Python serve the metrics.",
        labels=["version", "celery", "python"],
    )
    info.add_metric([orchestration.__version__, celery.__version__, platform.python_version()], 1)
    return info


class CampaignflowCollector(Collector):
    """Reads run counters, live runs, queue depths and step metrics on every scrape; ``flows`` are
    the flows every run metric reports, 0 included (those with runs are added)."""

    def __init__(self, queues: Sequence[str], flows: Iterable[str] = ()) -> None:
        self.queues = list(queues)
        self.flows = sorted(set(flows))

    def collect(self) -> Iterator[Metric]:
        yield build_info()
        yield from self._runs()
        conn = steps.client()
        if conn is None:
            return
        try:
            depths = self._depths(conn)
            agents = steps.read(conn)
        except redis.RedisError as exc:
            log.warning("broker not readable for metrics: %s", exc)
            yield GaugeMetricFamily("campaignflow_broker_up", "1 when the broker answered.", value=0)
            return
        yield GaugeMetricFamily("campaignflow_broker_up", "1 when the broker answered.", value=1)
        yield from depths
        yield from self._steps(agents)

    def _runs(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("campaignflow_store_up", "1 when the run store answered.")
        try:
            with sql_engine().connect() as conn:
                totals = counters.totals(conn)
                live = stats.live_counts(conn)
                dead = deadletters.dead_counts(conn)
                backlog, oldest = outbox.backlog(conn)
                due, oldest_due = waits.due_backlog(conn, datetime.now(UTC))
        except sa.exc.SQLAlchemyError as exc:
            log.warning("run store not readable for metrics: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        flows = sorted({*self.flows, *(f for f, _, _ in totals), *(f for f, _ in live)})
        yield from self._run_metrics(flows, totals, live)
        yield self._dead_letters(dead)
        yield from self._outbox(backlog, oldest)
        yield from self._timers(due, oldest_due)

    def _run_metrics(
        self, flows: list[str], totals: dict[tuple[str, str, str], int], live: dict[tuple[str, str], int]
    ) -> Iterator[Metric]:
        started = CounterMetricFamily(
            "campaignflow_runs_started_total",
            "Runs that started, per flow (a retried run starts again); never lowered by a purge.",
            labels=["flow"],
        )
        finished = CounterMetricFamily(
            "campaignflow_runs_finished_total",
            "Runs that ended, per flow and terminal status (succeeded, failed, cancelled); a retried "
            "run that ends again counts again; never lowered by a purge.",
            labels=["flow", "status"],
        )
        active = GaugeMetricFamily(
            "campaignflow_runs_active",
            "Runs queued, running or waiting now, per flow.",
            labels=["flow", "status"],
        )
        for flow in flows:
            started.add_metric(
                [flow], sum(n for (f, kind, _), n in totals.items() if f == flow and kind == counters.STARTED)
            )
            for status in sorted(TERMINAL_RUN_STATUSES):
                finished.add_metric([flow, status], totals.get((flow, counters.FINISHED, status), 0))
            for status in sorted(OPEN_RUN_STATUSES):
                active.add_metric([flow, status], live.get((flow, status), 0))
        yield from (started, finished, active)

    def _outbox(self, backlog: int, oldest: datetime | None) -> list[Metric]:
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
        return [
            GaugeMetricFamily(
                "campaignflow_outbox_backlog",
                "Run publications written and not yet handed to the broker (0: every run is published).",
                value=backlog,
            ),
            GaugeMetricFamily(
                "campaignflow_outbox_oldest_seconds",
                "Age of the oldest publication not yet handed to the broker (0 when there is none).",
                value=max(age, 0.0),
            ),
        ]

    def _timers(self, due: int, oldest: datetime | None) -> list[Metric]:
        lag = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
        return [
            GaugeMetricFamily(
                "campaignflow_timers_due",
                "Timers due and not fired yet (sleeps to wake, waits to time out; the poller fires them).",
                value=due,
            ),
            GaugeMetricFamily(
                "campaignflow_timers_lag_seconds",
                "How long the oldest due timer has waited for the poller (0 when none is due).",
                value=max(lag, 0.0),
            ),
        ]

    def _dead_letters(self, counts: dict[str, int]) -> Metric:
        gauge = GaugeMetricFamily(
            "campaignflow_dead_letters",
            "Messages the workers could not process, kept in the dead-letter store and not replayed, "
            "per reason (see `campaignflow deadletters list`).",
            labels=["reason"],
        )
        for reason in sorted({*REASONS, *counts}):
            gauge.add_metric([reason], counts.get(reason, 0))
        return gauge

    def _depths(self, conn: redis.Redis) -> list[Metric]:
        key_prefix = get_settings().redis_key_prefix or ""
        pipe = conn.pipeline(transaction=False)
        for queue in self.queues:
            for key in queue_keys(queue, key_prefix):
                pipe.llen(key)
        pipe.hlen(key_prefix + KOMBU_UNACKED_KEY)
        sizes = pipe.execute()
        per_queue = len(PRIORITY_STEPS) + 1
        depth = GaugeMetricFamily(
            "campaignflow_queue_depth", "Messages waiting in each queue (all priorities).", labels=["queue"]
        )
        for i, queue in enumerate(self.queues):
            depth.add_metric([queue], sum(sizes[i * per_queue : (i + 1) * per_queue]))
        unacked = GaugeMetricFamily(
            "campaignflow_unacked_messages",
            "Messages delivered to a worker and not yet acknowledged (all queues).",
            value=sizes[-1],
        )
        return [depth, unacked]

    def _steps(self, agents: dict[str, steps.AgentSteps]) -> Iterator[Metric]:
        duration = HistogramMetricFamily(
            "campaignflow_step_duration_seconds",
            "Duration of each try of an agent step, per agent.",
            labels=["agent"],
        )
        tries = CounterMetricFamily(
            "campaignflow_step_tries_total",
            "Tries of agent steps, per agent and Celery outcome (status: success, retry, failure, ignored).",
            labels=["agent", "status"],
        )
        retries = CounterMetricFamily(
            "campaignflow_step_retries_total",
            "Retries scheduled for agent steps, per agent.",
            labels=["agent"],
        )
        throttles = CounterMetricFamily(
            "campaignflow_step_throttles_total",
            "Times agent steps were refused a permit of their cluster-wide limits and put back, per agent.",
            labels=["agent"],
        )
        throttled = CounterMetricFamily(
            "campaignflow_step_throttled_seconds_total",
            "Seconds agent steps waited for permits of their cluster-wide limits, per agent.",
            labels=["agent"],
        )
        for agent, data in sorted(agents.items()):
            duration.add_metric([agent], data.cumulative(), data.seconds)
            for state, count in sorted(data.tries.items()):
                tries.add_metric([agent, state], count)
            retries.add_metric([agent], data.retries)
            throttles.add_metric([agent], data.throttles)
            throttled.add_metric([agent], data.throttled_seconds)
        yield from (duration, tries, retries, throttles, throttled)


def registry(queues: Sequence[str] | None = None) -> CollectorRegistry:
    """A registry holding only the campaignflow collector (the queues default to the registry's,
    the flows are the catalog's)."""
    runtime = current()
    if queues is None:
        queues = runtime.registry.queue_names()
    reg = CollectorRegistry(auto_describe=False)
    reg.register(CampaignflowCollector(queues, (flow.name for flow in runtime.flows)))
    return reg
