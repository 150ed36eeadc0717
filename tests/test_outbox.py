"""The outbox: a run and its publication are written in one transaction and published after the
commit, by the writer (the fast path) or by the relay; a publication that reaches the broker twice
starts the run once.

The store's part runs on Postgres and on SQLite (each built by the migrations, like
``tests/test_store_dialects.py``); the publishing part on the session's Postgres, Redis and worker.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from celery.signals import before_task_publish
from prometheus_client.core import Metric

from migrations.metadata import TARGET_METADATA
from orchestration.control import run_control
from orchestration.control.manager import manager
from orchestration.control.sweeper import sweep
from orchestration.engine import starts
from orchestration.engine.publish import RELAY_GRACE, relay
from orchestration.engine.starts import START_KWARG
from orchestration.flows import Flow
from orchestration.ops.doctor import check_outbox
from orchestration.ops.metrics import CampaignflowCollector
from orchestration.orchestrators.base import FlowRunner
from orchestration.settings import get_settings
from orchestration.store import outbox, sql_engine, sweeps
from orchestration.store import repository as repo
from orchestration.store.tables import outbox_t, run_t
from tests.support.agents import ledger
from tests.support.figures import figure
from tests.support.flows import flow
from tests.support.runs import record, wait_for_run
from tests.support.stores import migrated_store
from tests.support.wait import eventually
from tests.support.wiring import engine

# ------------------------------------------------------------------------------ the store, twice


@pytest.fixture(scope="module", params=("postgresql", "sqlite"))
def store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A store built by ``alembic upgrade head``: a Postgres schema of its own, or a SQLite file."""
    with migrated_store(request.param, tmp_path_factory.mktemp("outbox"), "cf_outbox") as url:
        yield url


@pytest.fixture
def url(store_url: str) -> str:
    """The store with every table empty."""
    with sql_engine(store_url).begin() as conn:
        for meta in TARGET_METADATA:
            for table in reversed(meta.sorted_tables):
                conn.execute(table.delete())
    return store_url


def new_run(
    f: Flow | None = None, *, mode: str = "async", payload: dict[str, Any] | None = None
) -> repo.NewRun:
    return repo.NewRun(
        run_id=str(uuid.uuid4()),
        flow_name=f.name if f else "outbox",
        flow_version=f.version if f else "1",
        flow_def=f.snapshot if f else {"name": "outbox", "steps": [{"id": "a", "agent": "noop"}]},
        payload=payload or {},
        mode=mode,
    )


def open_pending(
    url: str | None = None, f: Flow | None = None, payload: dict[str, Any] | None = None
) -> outbox.Entry:
    """A run and its first publication, written in one transaction and not published (as when the
    broker was down, or the writer died, right after the commit)."""
    with sql_engine(url).begin() as conn:
        run_id, _ = repo.open_run(conn, new_run(f, payload=payload))
        return outbox.add(conn, run_id, 1, outbox.OPEN)


def run_row(url: str | None, run_id: str) -> Any:
    with sql_engine(url).connect() as conn:
        return conn.execute(sa.select(run_t).where(run_t.c.run_id == run_id)).one()


def test_a_run_and_its_publication_are_stored_together_and_marked_once(url: str) -> None:
    entry = open_pending(url)
    assert (entry.publication, entry.kind) == (1, "open")
    assert run_row(url, entry.run_id).publication == 1
    with sql_engine(url).begin() as conn:
        assert outbox.has_pending(conn, entry.run_id)
        count, oldest = outbox.backlog(conn)
        assert count == 1
        assert oldest is not None
        assert oldest.tzinfo is not None
        outbox.record_failure(conn, entry.id, "broker: refused")
        assert outbox.mark_published(conn, entry.id)
        assert not outbox.mark_published(conn, entry.id)  # a second mark changes nothing
        assert outbox.backlog(conn) == (0, None)
        assert not outbox.has_pending(conn, entry.run_id)
        [row] = outbox.entries(conn, entry.run_id)
    assert (row["attempts"], row["last_error"]) == (1, "broker: refused")
    assert row["published_at"] is not None


def test_an_inline_run_has_no_publication(url: str) -> None:
    with sql_engine(url).begin() as conn:
        run_id, _ = repo.open_run(conn, new_run(mode="inline"))
    assert run_row(url, run_id).publication == 0


def test_a_claim_takes_the_oldest_pending_entries_written_before_a_time(url: str) -> None:
    made = [open_pending(url) for _ in range(5)]
    with sql_engine(url).begin() as conn:
        outbox.mark_published(conn, made[0].id)
    later = datetime.now(UTC) + timedelta(seconds=1)
    with sql_engine(url).begin() as conn:
        assert outbox.claim(conn, later, 2) == made[1:3]
    with sql_engine(url).begin() as conn:
        assert outbox.claim(conn, later, 10) == made[1:]
    with sql_engine(url).begin() as conn:
        assert outbox.claim(conn, datetime.now(UTC) - timedelta(hours=1), 10) == []  # none that old


def test_a_second_relay_never_claims_what_the_first_holds(url: str) -> None:
    """Postgres: the second claim skips the rows the first holds. SQLite (no row locks): it waits
    for the first to commit, then finds only what is still unpublished."""
    made = [open_pending(url) for _ in range(6)]
    later = datetime.now(UTC) + timedelta(seconds=1)
    second: list[list[outbox.Entry]] = []
    with sql_engine(url).begin() as first:
        held = outbox.claim(first, later, 3)
        assert held == made[:3]

        def claim_again() -> None:
            with sql_engine(url).begin() as conn:
                second.append(outbox.claim(conn, later, 10))

        thread = threading.Thread(target=claim_again)
        thread.start()
        if sql_engine(url).dialect.name == "postgresql":
            thread.join(10)
            assert second == [made[3:]]
        for entry in held:
            outbox.mark_published(first, entry.id)
    thread.join(30)
    assert not thread.is_alive()
    assert second == [made[3:]]


def test_a_publication_is_taken_by_one_publish_of_the_current_publication(url: str) -> None:
    entry = open_pending(url)
    with sql_engine(url).begin() as conn:
        assert outbox.take(conn, entry.run_id, 1, "token-a")
        assert outbox.take(conn, entry.run_id, 1, "token-a")  # redelivered, or another first task
        assert not outbox.take(conn, entry.run_id, 1, "token-b")  # a copy of the same publication
        assert outbox.why_not_taken(conn, entry.run_id, 1) == "the publish token-a took it first"
        retry = outbox.next_publication(conn, entry.run_id, outbox.RETRY)
        assert (retry.publication, retry.kind) == (2, "retry")
        assert not outbox.take(conn, entry.run_id, 1, "token-a")  # superseded
        assert outbox.why_not_taken(conn, entry.run_id, 1) == "publication 2 superseded it"
        assert outbox.take(conn, entry.run_id, 2, "token-c")
        assert repo.finish_run(conn, entry.run_id, "cancelled")
        assert not outbox.take(conn, entry.run_id, 2, "token-c")  # the run ended
        assert outbox.why_not_taken(conn, entry.run_id, 2) == "the run is cancelled"
        assert not outbox.take(conn, "no-such-run", 1, "token-a")
        assert outbox.why_not_taken(conn, "no-such-run", 1) == "the run does not exist"
    assert run_row(url, entry.run_id).start_token == "token-c"


def test_a_run_waiting_in_the_outbox_is_not_stalled(url: str) -> None:
    entry = open_pending(url)
    later = datetime.now(UTC) + timedelta(hours=1)
    with sql_engine(url).begin() as conn:
        assert sweeps.stalled_runs(conn, later, 10) == []
        outbox.mark_published(conn, entry.id)
        assert [r.run_id for r in sweeps.stalled_runs(conn, later, 10)] == [entry.run_id]


# ------------------------------------------------------------------------ publishing, for real

EFFECT_FLOW: list[dict[str, Any]] = [
    {"id": "fx", "agent": "effect", "input": {"sleep": 0.5}},
    {"id": "after", "agent": "noop"},
]


def entries_of(run_id: str) -> list[dict[str, Any]]:
    with sql_engine().connect() as conn:
        return outbox.entries(conn, run_id)


def effects(run_id: str, step_id: str = "fx") -> tuple[int, int]:
    """(calls of the effect agent, effects it made) for the run's step."""
    calls = int(ledger().get(f"calls:{run_id}:{step_id}") or 0)
    return calls, int(ledger().get(f"effects:{run_id}") or 0)


def relay_now(**kwargs: Any) -> list[str]:
    """One relay pass that sees every pending entry (as the relay does ``RELAY_GRACE`` later)."""
    return relay(engine(), now=datetime.now(UTC) + RELAY_GRACE + timedelta(seconds=1), **kwargs).published


class StartPublishes:
    """Counts the publishes of each run: the distinct ``start`` tokens of the messages published in
    any thread of this process (Celery's ``before_task_publish`` signal)."""

    def __init__(self) -> None:
        self.tokens: dict[str, set[str]] = {}
        self.lock = threading.Lock()

    def __call__(self, sender: str | None = None, body: Any = None, **_: Any) -> None:
        start = body[1].get(START_KWARG)
        if start is not None:
            with self.lock:
                self.tokens.setdefault(body[1]["run_id"], set()).add(start["token"])

    @property
    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter({run_id: len(tokens) for run_id, tokens in self.tokens.items()})


@pytest.fixture
def start_publishes() -> Iterator[StartPublishes]:
    counter = StartPublishes()
    before_task_publish.connect(counter, weak=False)
    try:
        yield counter
    finally:
        before_task_publish.disconnect(counter)


def test_ingest_publishes_after_the_commit_and_marks_the_entry(
    worker: object, start_publishes: StartPublishes
) -> None:
    event = {"id": f"outbox-{uuid.uuid4()}", "type": "lead.created", "payload": {"email": "ada@acme.io"}}
    handle = manager().ingest_event(event)
    assert (handle.status, handle.duplicate, handle.pending) == ("queued", False, False)
    [entry] = entries_of(handle.run_id)
    assert (entry["publication"], entry["kind"], entry["attempts"]) == (1, "open", 0)
    assert entry["published_at"] is not None
    assert wait_for_run(handle.run_id).status == "succeeded"
    assert run_row(None, handle.run_id).start_token is not None
    again = manager().ingest_event(event)
    assert (again.run_id, again.duplicate, again.pending) == (handle.run_id, True, False)
    assert start_publishes.counts == Counter({handle.run_id: 1})


def test_the_relay_publishes_what_was_left_pending(worker: object) -> None:
    f = flow(EFFECT_FLOW)
    left = [open_pending(None, f) for _ in range(3)]
    assert relay(engine()).published == []  # younger than the grace: still the writer's to publish
    published = relay_now()
    assert sorted(published) == sorted(e.run_id for e in left)
    for entry in left:
        assert wait_for_run(entry.run_id).status == "succeeded"
        assert effects(entry.run_id) == (1, 1)
        [row] = entries_of(entry.run_id)
        assert row["published_at"] is not None
    assert relay_now() == []  # nothing left


def test_two_relays_publish_each_entry_once(worker: object, start_publishes: StartPublishes) -> None:
    f = flow([{"id": "fx", "agent": "effect"}])
    left = {open_pending(None, f).run_id for _ in range(40)}
    reports: list[list[str]] = []
    barrier = threading.Barrier(2)

    def one_relay() -> None:
        barrier.wait()
        reports.append(relay_now(batch=4))

    threads = [threading.Thread(target=one_relay) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    published = [run_id for report in reports for run_id in report]
    assert sorted(published) == sorted(left)
    assert all(len(report) > 0 for report in reports), "both relays took part"
    assert start_publishes.counts == Counter(dict.fromkeys(left, 1))
    ends = [wait_for_run(run_id, 60) for run_id in left]
    assert {e.status for e in ends} == {"succeeded"}
    assert {effects(run_id, "fx") for run_id in left} == {(1, 1)}
    figure(
        f"outbox: two relays published {len(published)} pending runs ({len(reports[0])} + "
        f"{len(reports[1])}); publishes per run: {sorted(set(start_publishes.counts.values()))}"
    )


SLOW_EFFECT = {"agent": "effect", "input": {"sleep": 0.5}}
#: Flows by the kind of task they begin with, and the effect steps each runs.
HEADS: dict[str, tuple[list[dict[str, Any]], list[str]]] = {
    "a step": (EFFECT_FLOW, ["fx"]),
    "a parallel block": (
        [
            {
                "kind": "parallel",
                "id": "fan",
                "members": [{"id": "m0", **SLOW_EFFECT}, {"id": "m1", **SLOW_EFFECT}],
            },
            {"id": "after", "agent": "noop"},
        ],
        ["m0", "m1"],
    ),
    "a branch": (
        [
            {
                "kind": "branch",
                "id": "route",
                "cases": [
                    {
                        "when": {"field": "payload.v", "op": "eq", "value": 1},
                        "then": {"id": "no", "agent": "noop"},
                    }
                ],
                "else": {"id": "fx", **SLOW_EFFECT},
            }
        ],
        ["fx"],
    ),
    "a map": (
        [{"kind": "map", "id": "each", "over": "$payload.items", "do": {"id": "one", **SLOW_EFFECT}}],
        ["each[0]", "each[1]"],
    ),
}


@pytest.mark.parametrize("head", list(HEADS))
def test_a_publication_sent_twice_starts_the_run_once(
    worker: object, start_publishes: StartPublishes, caplog: pytest.LogCaptureFixture, head: str
) -> None:
    """The writer published and died before marking (or the store went away): the relay publishes
    the same publication again. The second copy stops at its first tasks; each step runs once."""
    caplog.set_level(logging.INFO, logger=starts.__name__)
    steps, effect_steps = HEADS[head]
    f = flow(steps)
    entry = open_pending(None, f, {"items": [1, 2]})
    engine().start(f, entry.run_id, publication=entry.publication)  # published, never marked
    assert relay_now() == [entry.run_id]  # so the relay sends it again
    assert start_publishes.counts == Counter({entry.run_id: 2})
    env = wait_for_run(entry.run_id)
    assert env.status == "succeeded", env.model_dump_json(indent=2)
    assert [record(env, s).attempts for s in effect_steps] == [1] * len(effect_steps)
    assert [effects(entry.run_id, s)[0] for s in effect_steps] == [1] * len(effect_steps)
    assert effects(entry.run_id)[1] == len(effect_steps)

    def dropped() -> bool:
        assert any("stops here: the publish" in r.getMessage() for r in caplog.records), "no copy stopped yet"
        return True

    eventually(dropped, 10, "the second copy to stop at its first task")


def test_retry_and_redrive_are_new_publications(worker: object) -> None:
    failing = flow(
        [
            {
                "id": "b",
                "agent": "fail",
                "input": {"permanent": True, "fail_attempts": "$payload.fail_attempts"},
            }
        ]
    )
    run_id = FlowRunner(engine(), failing).run({"fail_attempts": 9}, mode="async").run_id
    assert wait_for_run(run_id).status == "failed"
    assert run_control.retry_run(run_id, {"fail_attempts": 0}) == "running"
    assert wait_for_run(run_id).status == "succeeded"
    assert [(e["publication"], e["kind"]) for e in entries_of(run_id)] == [(1, "open"), (2, "retry")]
    assert all(e["published_at"] is not None for e in entries_of(run_id))

    lost = open_pending(None, flow([{"id": "a", "agent": "noop"}]))
    later = datetime.now(UTC) + timedelta(hours=1)
    assert (
        sweep(engine(), stall_seconds=60, max_redrives=3, now=later).redriven == []
    )  # it waits in the outbox
    with sql_engine().begin() as conn:  # marked, but its message was lost with the broker
        outbox.mark_published(conn, lost.id)
    assert sweep(engine(), stall_seconds=60, max_redrives=3, now=later).redriven == [lost.run_id]
    env = wait_for_run(lost.run_id)
    assert (env.status, env.metadata.redrives) == ("succeeded", 1)
    assert [(e["publication"], e["kind"]) for e in entries_of(lost.run_id)] == [(1, "open"), (2, "redrive")]


# ------------------------------------------------------------------------ metrics and doctor


def outbox_samples() -> dict[str, float]:
    metrics: list[Metric] = list(CampaignflowCollector([]).collect())
    return {m.name: m.samples[0].value for m in metrics if m.name.startswith("campaignflow_outbox")}


def test_the_backlog_shows_in_metrics_and_doctor(clean_db: str) -> None:
    assert outbox_samples() == {"campaignflow_outbox_backlog": 0, "campaignflow_outbox_oldest_seconds": 0}
    assert check_outbox(clean_db, get_settings()).status == "ok"
    entries = [open_pending() for _ in range(2)]
    with sql_engine().begin() as conn:  # written a minute ago, and still not published
        conn.execute(
            outbox_t.update()
            .where(outbox_t.c.id == entries[0].id)
            .values(created_at=sa.func.now() - sa.text("interval '60 seconds'"))
        )
    samples = outbox_samples()
    assert samples["campaignflow_outbox_backlog"] == 2
    assert samples["campaignflow_outbox_oldest_seconds"] >= 60
    check = check_outbox(clean_db, get_settings())
    assert check.status == "FAIL"
    assert check.detail.startswith("backlog 2 publication(s), the oldest 6")
    assert "the relay publishes them once the broker answers" in check.detail
