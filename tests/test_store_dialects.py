"""The store behaves the same on Postgres and on SQLite (the embedded default): every test here runs
against both, each built from empty by the same Alembic migrations, with no mocks."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from migrations.metadata import TARGET_METADATA
from orchestration.control.campaigns import CampaignSpec
from orchestration.control.rejected import get_rejected, reject
from orchestration.envelope import Envelope
from orchestration.errors import EventValidationError, RunNotFoundError
from orchestration.names import NOTE_AFTER_CANCEL
from orchestration.step_error import StepError
from orchestration.store import (
    campaigns,
    counters,
    deadletters,
    heartbeats,
    rejected,
    retention,
    routes,
    sql_engine,
    step_writer,
    waits,
)
from orchestration.store import repository as repo
from orchestration.store.dialects.postgres import PostgresQueryComponents
from orchestration.store.dialects.sqlite import SqliteQueryComponents
from orchestration.store.jsontext import store_json
from orchestration.store.queries import queries
from tests.support.config import settings_env
from tests.support.runs import record, step_error
from tests.support.stores import migrated_store

DIALECTS = ("postgresql", "sqlite")


@pytest.fixture(scope="module", params=DIALECTS)
def store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A store built by ``alembic upgrade head``: a Postgres schema of its own, or a SQLite file."""
    with migrated_store(request.param, tmp_path_factory.mktemp("store"), "cf_dialect") as url:
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
    event_id: str | None = None,
    *,
    campaign: str | None = None,
    orchestrator: str | None = None,
    deadline_at: datetime | None = None,
) -> repo.NewRun:
    return repo.NewRun(
        run_id=str(uuid.uuid4()),
        flow_name="parity",
        flow_version="1",
        flow_def={"name": "parity", "steps": [{"id": "a", "agent": "noop"}]},
        payload={"email": "ada@example.com"},
        event_id=event_id,
        campaign=campaign,
        orchestrator=orchestrator,
        deadline_at=deadline_at,
    )


def open_run(url: str, event_id: str | None = None, **fields: Any) -> str:
    with sql_engine(url).begin() as conn:
        run_id, _duplicate = repo.open_run(conn, new_run(event_id, **fields))
    return run_id


def envelope(url: str, run_id: str) -> Envelope:
    with sql_engine(url).connect() as conn:
        return repo.get_envelope(conn, run_id)


# ------------------------------------------------------------------------------------------- runs


def test_each_engine_gets_its_own_dialect_components_once(url: str) -> None:
    engine = sql_engine(url)
    expected = PostgresQueryComponents if engine.dialect.name == "postgresql" else SqliteQueryComponents
    with engine.connect() as conn:
        assert isinstance(queries(conn), expected)
        assert queries(conn) is queries(engine)


def test_the_same_event_id_opens_the_same_run(url: str) -> None:
    with sql_engine(url).begin() as conn:
        first, dup_first = repo.open_run(conn, new_run("evt-1"))
    with sql_engine(url).begin() as conn:
        second, dup_second = repo.open_run(conn, new_run("evt-1"))
    assert (second, dup_first, dup_second) == (first, False, True)
    assert open_run(url) != open_run(url)  # no event id: a new run each time
    with sql_engine(url).connect() as conn:
        assert repo.run_status(conn, first) == "queued"
        assert len(repo.list_runs(conn)) == 3


def test_a_run_ends_terminal_once(url: str) -> None:
    run_id = open_run(url)
    with sql_engine(url).begin() as conn:
        assert repo.finish_run(conn, run_id, "failed", {"type": "Boom", "message": "boom"})
        assert not repo.finish_run(conn, run_id, "succeeded")
        assert not repo.finish_run(conn, run_id, "cancelled")
    env = envelope(url, run_id)
    assert env.status == "failed"
    assert env.metadata.error is not None
    assert env.metadata.error.type == "Boom"
    assert env.metadata.finished_at is not None
    assert env.metadata.finished_at.tzinfo is not None


def test_an_unknown_run_is_not_found(url: str) -> None:
    with sql_engine(url).connect() as conn, pytest.raises(RunNotFoundError):
        repo.load_state(conn, "no-such-run")
    with sql_engine(url).connect() as conn, pytest.raises(RunNotFoundError):
        repo.start_step(conn, "no-such-run", "a", "noop")


# ------------------------------------------------------------------------------------------ steps


def test_start_step_starts_the_run_and_a_redelivery_counts_a_second_try(url: str) -> None:
    run_id = open_run(url)
    with sql_engine(url).begin() as conn:
        state, start = repo.start_step(conn, run_id, "a", "noop")
    assert state.payload == {"email": "ada@example.com"}
    assert state.statuses == {}
    assert start is not None
    assert (start.status, start.attempts, start.already_done) == ("running", 1, False)
    with sql_engine(url).begin() as conn:
        state, again = repo.start_step(conn, run_id, "a", "noop")
    assert state.status == "running"
    assert state.statuses == {"a": "running"}
    assert again is not None
    assert again.attempts == 2
    env = envelope(url, run_id)
    assert [(r.step_id, r.status, r.attempts) for r in env.records] == [("a", "running", 2)]
    assert env.metadata.started_at is not None


def test_a_finished_step_redelivered_is_updated_never_added(url: str) -> None:
    run_id = open_run(url)
    with sql_engine(url).begin() as conn:
        repo.start_step(conn, run_id, "a", "noop")
        assert repo.finish_step(conn, run_id, "a", status="succeeded", output={"score": 7})
    with sql_engine(url).begin() as conn:
        state, start = repo.start_step(conn, run_id, "a", "noop")
        # a succeeded record is never overwritten
        assert not repo.finish_step(
            conn, run_id, "a", status="failed", error={"type": "Late", "message": "x"}
        )
    assert start is not None
    assert start.already_done
    assert start.output == {"score": 7}
    assert state.outputs == {"a": {"score": 7}}
    env = envelope(url, run_id)
    assert [(r.step_id, r.status, r.attempts, r.output) for r in env.records] == [
        ("a", "succeeded", 1, {"score": 7})
    ]


def test_a_retried_step_keeps_its_attempt_errors(url: str) -> None:
    run_id = open_run(url)
    err = {"type": "Flaky", "message": "try again", "attempt": 1}
    with sql_engine(url).begin() as conn:
        first = repo.begin_step(conn, run_id, "a", "noop")
        repo.finish_step(conn, run_id, "a", status="pending", error=err, attempt_errors=[err])
        second = repo.begin_step(conn, run_id, "a", "noop")
    assert (first.attempts, second.attempts, second.attempt_errors) == (1, 2, [err])
    with sql_engine(url).begin() as conn:
        repo.finish_step(conn, run_id, "a", status="failed", error=err, attempt_errors=[err, err])
        assert repo.first_failed_step(conn, run_id) == ("a", err)
    record = envelope(url, run_id).records[0]
    assert record.status == "failed"
    assert len(record.attempt_errors) == 2
    assert record.finished_at is not None


def test_the_input_is_kept_through_tries_and_outcomes(url: str) -> None:
    run_id = open_run(url)
    given = {"email": "ada@example.com", "token": "**********"}
    err = {"type": "Flaky", "message": "try again", "attempt": 1}
    with sql_engine(url).begin() as conn:
        _state, first = repo.start_step(conn, run_id, "a", "noop")
        repo.keep_input(conn, run_id, "a", given)
        repo.finish_step(conn, run_id, "a", status="pending", error=err, attempt_errors=[err])
    with sql_engine(url).begin() as conn:
        _state, second = repo.start_step(conn, run_id, "a", "noop")  # the next try sees it
        repo.finish_step(conn, run_id, "a", status="succeeded", output={"ok": True})
    assert first is not None
    assert second is not None
    assert (first.input, second.input) == (None, given)
    env = envelope(url, run_id)
    assert [(r.step_id, r.status, r.attempts, r.input) for r in env.records] == [("a", "succeeded", 2, given)]


def test_the_last_write_ends_the_run_with_it(url: str) -> None:
    run_id = open_run(url)
    with sql_engine(url).begin() as conn:
        repo.start_step(conn, run_id, "a", "noop")
    with step_writer(True, url) as conn:
        assert repo.finish_step(conn, run_id, "a", status="succeeded", output=[1, 2], ends_run=True)
    env = envelope(url, run_id)
    assert (env.status, env.records[0].status, env.records[0].output) == ("succeeded", "succeeded", [1, 2])
    join_run = open_run(url)
    with step_writer(True, url) as conn:
        repo.record_step(conn, join_run, "join", agent="engine.join", status="succeeded", ends_run=True)
    assert envelope(url, join_run).status == "succeeded"


def test_no_step_begins_past_the_run_deadline(url: str) -> None:
    run_id = open_run(url, deadline_at=datetime.now(UTC) - timedelta(seconds=1))
    with sql_engine(url).begin() as conn:
        state, start = repo.start_step(conn, run_id, "a", "noop")
    assert start is None
    assert state.status == "queued"
    assert state.deadline_at is not None
    assert envelope(url, run_id).records == []


def test_cancel_closes_open_records_and_a_late_result_is_kept_with_a_note(url: str) -> None:
    run_id = open_run(url)
    with sql_engine(url).begin() as conn:
        repo.start_step(conn, run_id, "a", "noop")
        repo.record_step(conn, run_id, "m", agent="engine.map", status="running", output={"items": 2})
        repo.finish_run(conn, run_id, "cancelled")
        assert sorted(repo.close_open_steps(conn, run_id, StepError.cancelled_open().as_dict())) == ["a", "m"]
        state, start = repo.start_step(conn, run_id, "b", "noop")
        assert start is None  # a stopped run begins no step
        assert state.status == "cancelled"
        assert not repo.finish_step(conn, run_id, "a", status="succeeded", output={"late": True})
        assert repo.record_late_result(
            conn, run_id, "a", status="succeeded", output={"late": True}, note=NOTE_AFTER_CANCEL
        )
    env = envelope(url, run_id)
    shown = [(r.step_id, r.status, r.output, r.note) for r in env.records]
    assert shown == [
        ("a", "succeeded", {"late": True}, NOTE_AFTER_CANCEL),
        ("m", "skipped", {"items": 2}, None),
    ]
    assert record(env, "a").error is None
    assert step_error(record(env, "m")).type == "Cancelled"
    assert env.status == "cancelled"


def test_skipped_steps_leave_existing_records_alone(url: str) -> None:
    run_id = open_run(url)
    with sql_engine(url).begin() as conn:
        repo.record_step(conn, run_id, "branch", agent="engine.branch", status="succeeded", output={"arm": 0})
        repo.skip_steps(conn, run_id, [("branch", "engine.branch"), ("b", "noop"), ("c", None)])
        repo.skip_steps(conn, run_id, [("b", "noop")])  # a redelivered branch skips again: no change
        repo.record_step(conn, run_id, "branch", agent="engine.branch", status="failed")  # no overwrite
        state = repo.load_state(conn, run_id)
    assert state.statuses == {"branch": "succeeded", "b": "skipped", "c": "skipped"}
    assert state.outputs == {"branch": {"arm": 0}}
    records = {r.step_id: r for r in envelope(url, run_id).records}
    assert (records["b"].attempts, records["b"].started_at, records["b"].agent) == (0, None, "noop")


def test_unfinished_steps_fail_together(url: str) -> None:
    run_id = open_run(url)
    err = {"type": "WorkerLost", "message": "gone"}
    with sql_engine(url).begin() as conn:
        repo.begin_step(conn, run_id, "a", "noop")
        repo.begin_step(conn, run_id, "b", "noop")
        repo.finish_step(conn, run_id, "b", status="succeeded")
        assert repo.fail_unfinished_steps(conn, run_id, err) == ["a"]
    assert {r.step_id: r.status for r in envelope(url, run_id).records} == {"a": "failed", "b": "succeeded"}


# -------------------------------------------------------------------------------------- reading runs


def test_the_envelope_holds_the_run_and_its_records_in_order(url: str) -> None:
    deadline = datetime.now(UTC) + timedelta(hours=1)
    run_id = open_run(url, "evt-env", campaign="spring", orchestrator="lead", deadline_at=deadline)
    with sql_engine(url).begin() as conn:
        repo.start_step(conn, run_id, "a", "noop")
        repo.finish_step(conn, run_id, "a", status="succeeded", output={"n": 1})
        repo.start_step(conn, run_id, "b", "noop")
    env = envelope(url, run_id)
    meta = env.metadata
    assert (env.run_id, env.flow, env.status) == (run_id, "parity", "running")
    assert (meta.event_id, meta.campaign, meta.orchestrator, meta.mode) == (
        "evt-env",
        "spring",
        "lead",
        "async",
    )
    assert meta.deadline_at == deadline
    assert meta.created_at is not None
    assert meta.created_at.tzinfo is not None
    assert meta.payload == {"email": "ada@example.com"}
    assert [(r.step_id, r.status) for r in env.records] == [("a", "succeeded"), ("b", "running")]
    started = env.records[0].started_at
    assert started is not None
    assert started.tzinfo is not None


def test_list_runs_filters_and_puts_the_newest_first(url: str) -> None:
    older = open_run(url, campaign="spring")
    newer = open_run(url, campaign="spring")
    other = open_run(url, campaign="autumn")
    with sql_engine(url).begin() as conn:
        repo.finish_run(conn, other, "succeeded")
    with sql_engine(url).connect() as conn:
        assert [r.run_id for r in repo.list_runs(conn, campaign="spring")] == [newer, older]
        assert [r.run_id for r in repo.list_runs(conn, status="succeeded")] == [other]
        assert [r.run_id for r in repo.list_runs(conn, flow="parity", limit=1)] == [other]
        assert repo.list_runs(conn, flow="nope") == []
        since = datetime.now(UTC) + timedelta(minutes=1)
        assert repo.list_runs(conn, since=since) == []


# ------------------------------------------------------------------------- counters and retention


def totals(url: str) -> dict[tuple[str, str, str], int]:
    with sql_engine(url).connect() as conn:
        return counters.totals(conn)


def test_every_run_transition_is_counted_once_and_a_retry_or_a_purge_lowers_no_count(url: str) -> None:
    ok, retried, cancelled, live = (open_run(url) for _ in range(4))
    with sql_engine(url).begin() as conn:
        repo.start_step(conn, ok, "a", "noop")  # queued -> running (one statement on Postgres)
        repo.start_step(conn, ok, "a", "noop")  # a redelivery: no second start
        repo.start_step(conn, retried, "a", "noop")
        repo.start_step(conn, live, "a", "noop")
        assert repo.finish_run(conn, retried, "failed", {"type": "Boom", "message": "boom"})
        assert repo.finish_run(conn, cancelled, "cancelled")  # ended before it started
        assert not repo.finish_run(conn, cancelled, "failed")  # terminal once: no second end
    with step_writer(True, url) as conn:  # the last write ends the run in the same statement
        assert repo.finish_step(conn, ok, "a", status="succeeded", ends_run=True)
    with sql_engine(url).begin() as conn:
        repo.reopen_run(conn, retried)  # a retry: the run starts again...
        assert repo.succeed_run(conn, retried)  # ...and ends again
    expected = {
        ("parity", "started", "running"): 4,
        ("parity", "finished", "succeeded"): 2,
        ("parity", "finished", "failed"): 1,
        ("parity", "finished", "cancelled"): 1,
    }
    assert totals(url) == expected
    with sql_engine(url).begin() as conn:
        assert retention.purge_runs(conn, datetime.now(UTC) + timedelta(seconds=1)) == retention.Purged(3, 2)
    with sql_engine(url).connect() as conn:
        assert [r.run_id for r in repo.list_runs(conn)] == [live]
    assert totals(url) == expected  # the counts outlive the runs
    with sql_engine(url).begin() as conn:
        assert counters.fold(conn) == 8  # one row per transition, folded into one per count
    with sql_engine(url).begin() as conn:
        assert counters.fold(conn) == 0  # nothing left to fold
    assert totals(url) == expected


def test_a_purge_takes_finished_runs_a_batch_at_a_time_with_their_records_and_keys(url: str) -> None:
    finished = [open_run(url, f"evt-{i}") for i in range(5)]
    live = open_run(url, "evt-live")
    with sql_engine(url).begin() as conn:
        for i, run_id in enumerate(finished):
            repo.record_step(conn, run_id, "a", agent="noop", status="succeeded")
            repo.finish_run(conn, run_id, "failed" if i == 0 else "succeeded")
        repo.start_step(conn, live, "a", "noop")
    later, earlier = datetime.now(UTC) + timedelta(seconds=1), datetime.now(UTC) - timedelta(hours=1)
    with sql_engine(url).connect() as conn:
        assert retention.count_runs(conn, earlier) == retention.Purged(0, 0)
        assert retention.count_runs(conn, later) == retention.Purged(5, 5)
        assert retention.count_runs(conn, later, ["failed"]) == retention.Purged(1, 1)
    with pytest.raises(ValueError, match="only finished runs"):
        retention.terminal(["running"])
    with sql_engine(url).begin() as conn:
        assert retention.purge_runs(conn, earlier) == retention.Purged(0)
        assert retention.purge_runs(conn, later, ["failed"]) == retention.Purged(1, 1)
    batches: list[retention.Purged] = []
    while not batches or batches[-1].rows == 2:
        with sql_engine(url).begin() as conn:
            batches.append(retention.purge_runs(conn, later, limit=2))
    assert [b.rows for b in batches] == [2, 2, 0]
    assert sum(b.step_records for b in batches) == 4
    with sql_engine(url).connect() as conn:
        assert [r.run_id for r in repo.list_runs(conn)] == [live]
        assert [(r.step_id, r.status) for r in repo.get_envelope(conn, live).records] == [("a", "running")]
    # a purged run's event id is new again; a live run's still opens the same run
    assert open_run(url, "evt-1") not in finished
    with sql_engine(url).begin() as conn:
        assert repo.open_run(conn, new_run("evt-live")) == (live, True)


def test_rejected_events_are_purged_a_batch_at_a_time(url: str) -> None:
    with sql_engine(url).begin() as conn:
        ids = [
            rejected.insert_rejected(
                conn, {"event_id": f"bad-{i}", "raw": "{}", "reason": "r", "problems": []}
            )
            for i in range(3)
        ]
        rejected.mark_replayed(conn, ids[0], {}, "run-0")
    later = datetime.now(UTC) + timedelta(seconds=1)
    with sql_engine(url).begin() as conn:
        assert retention.count_rejected(conn, later) == retention.Purged(3)
        assert retention.purge_rejected(conn, datetime.now(UTC) - timedelta(hours=1)) == retention.Purged(0)
        assert retention.purge_rejected(conn, later, ["replayed"]) == retention.Purged(1)
        assert retention.purge_rejected(conn, later, limit=1) == retention.Purged(1)
        assert [r.id for r in rejected.list_rejected(conn, None, 10)] == [ids[2]]


# ----------------------------------------------------------------------------------- control plane


def test_rejected_events_are_stored_listed_and_replayed(url: str) -> None:
    body = {"id": "evt-bad", "type": "lead.created", "payload": {}}
    stored = store_json(body)
    columns = {"raw": stored.text, "raw_complete": True, "body_hash": stored.digest}
    values = {"event_id": "evt-bad", **columns, "reason": "invalid_payload: email", "problems": ["email"]}
    with sql_engine(url).begin() as conn:
        first = rejected.insert_rejected(conn, values)
        assert rejected.open_rejection(conn, "evt-bad", stored.digest) == first
        assert (
            rejected.open_rejection(conn, "evt-bad", store_json({**body, "payload": {"x": 1}}).digest) is None
        )
        assert rejected.open_rejection(conn, None, stored.digest) is None
        second = rejected.insert_rejected(
            conn, {**values, "event_id": None, "raw": "not json at all", "raw_complete": False}
        )
        assert rejected.open_rejection(conn, None, stored.digest) == second
    with sql_engine(url).connect() as conn:
        assert [r.id for r in rejected.list_rejected(conn, "rejected", 50)] == [second, first]
        row = rejected.get_rejected(conn, first)
        assert row is not None
        assert (row.raw, row.problems, row.status) == (stored.text, ["email"], "rejected")
        assert rejected.get_rejected(conn, 10_000) is None
    with sql_engine(url).begin() as conn:
        rejected.mark_replayed(conn, first, columns, "run-1")
    with sql_engine(url).connect() as conn:
        replayed = rejected.list_rejected(conn, "replayed", 50)
        assert [(r.id, r.replay_run_id) for r in replayed] == [(first, "run-1")]
        assert rejected.open_rejection(conn, "evt-bad", stored.digest) is None
        assert len(rejected.list_rejected(conn, None, 50)) == 2


def test_any_rejected_body_is_stored_and_reads_back_the_same(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NUL characters and lone surrogates, in values, keys and the event id, on both databases."""
    body = {"id": "x\u0000y\ud800", "type": "t", "payload": {"a\u0000": ["\udfff", "é", "\u0000"]}}
    with settings_env(monkeypatch, database_url=url):
        error = reject(body, EventValidationError(["id: contains a NUL character; remove it\u0000"]))
        row = get_rejected(error.rejected_id)
    assert row.raw == body
    assert row.raw_complete
    assert row.event_id == "x\\u0000y\\ud800"
    assert row.problems == ["id: contains a NUL character; remove it\\u0000"]


def test_dead_letters_are_counted_once_per_message_and_purged(url: str) -> None:
    values = {
        "fingerprint": "f" * 64,
        "queue": "orchestration",
        "task": None,
        "reason": "not_utf8",
        "detail": "body is not UTF-8 text",
        "headers": "{}",
        "content_type": "application/json",
        "content_encoding": "utf-8",
        "body": b"\xff\x00\xfe",
        "body_size": 3,
    }
    with sql_engine(url).begin() as conn:
        first = deadletters.record(conn, values)
        assert deadletters.record(conn, values) == first
        other = deadletters.record(conn, {**values, "fingerprint": "e" * 64, "reason": "bad_json"})
    with sql_engine(url).begin() as conn:
        row = deadletters.get_dead_letter(conn, first)
        assert row is not None
        assert (row._mapping["count"], bytes(row.body), row.status) == (2, b"\xff\x00\xfe", "dead")
        assert row.last_seen >= row.first_seen
        assert deadletters.dead_counts(conn) == {"not_utf8": 1, "bad_json": 1}
        deadletters.mark_replayed(conn, first)
        assert deadletters.dead_counts(conn) == {"bad_json": 1}
        assert [r.id for r in deadletters.list_dead_letters(conn, "replayed", None, 10)] == [first]
        assert deadletters.record(conn, values) == first  # seen again: dead again
        assert [r.id for r in deadletters.list_dead_letters(conn, "dead", "orchestration", 10)] == [
            first,
            other,
        ]
        assert deadletters.list_dead_letters(conn, None, "agents.x", 10) == []
    with sql_engine(url).begin() as conn:
        assert retention.purge_dead_letters(conn, datetime.now(UTC) - timedelta(days=1)).rows == 0
        assert retention.count_dead_letters(conn, None).rows == 2
        assert retention.purge_dead_letters(conn, datetime.now(UTC) + timedelta(seconds=1), limit=1).rows == 1
        assert retention.purge_dead_letters(conn, None, ["replayed"]).rows == 0
        assert retention.purge_dead_letters(conn, None, ["dead"]).rows == 1


def test_campaigns_are_stored_paused_and_their_slots_claimed_once(url: str) -> None:
    spec = CampaignSpec.model_validate({"name": "weekly", "event_type": "lead.created", "every": 60})
    with sql_engine(url).begin() as conn:
        campaign_id = campaigns.insert_campaign(conn, spec.row())
        assert campaign_id is not None
        assert campaigns.insert_campaign(conn, spec.row()) is None  # the name is taken
        assert campaigns.replace_campaign(conn, "weekly", {**spec.row(), "max_catchup": 5}) == campaign_id
        assert campaigns.replace_campaign(conn, "nope", spec.row()) is None
    with sql_engine(url).connect() as conn:
        [listed] = campaigns.list_campaigns(conn)
        assert (listed["name"], listed["max_catchup"], listed["enabled"]) == ("weekly", 5, True)
        assert campaigns.enabled_campaign_ids(conn) == [campaign_id]
    slot = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    with sql_engine(url).begin() as conn:
        row = campaigns.lock_enabled_campaign(conn, campaign_id)
        assert row is not None
        assert row.name == "weekly"
        assert campaigns.claim_slot(conn, campaign_id, slot, -1)
        assert not campaigns.claim_slot(conn, campaign_id, slot, -1)
        campaigns.set_last_slot(conn, campaign_id, slot)
    with sql_engine(url).begin() as conn:
        assert campaigns.reclaim_slots(conn, -1, datetime.now(UTC) + timedelta(seconds=1)) == [
            (campaign_id, slot)
        ]
        campaigns.set_slot_runs(conn, campaign_id, slot, 3)
        assert campaigns.reclaim_slots(conn, -1, datetime.now(UTC) + timedelta(seconds=1)) == []
        assert campaigns.set_enabled(conn, "weekly", False)
        assert not campaigns.set_enabled(conn, "nope", False)
    with sql_engine(url).connect() as conn:
        assert campaigns.enabled_campaign_ids(conn) == []
        assert campaigns.lock_enabled_campaign(conn, campaign_id) is None
        assert campaigns.campaign_names(conn) == ["weekly"]
        assert campaigns.campaigns_by_id(conn, [campaign_id])[campaign_id].last_slot_at is not None


def test_routes_and_heartbeats(url: str) -> None:
    at = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    with sql_engine(url).begin() as conn:
        route_id = routes.insert_route(conn, {"event_type": "lead.created", "flow": "lead_handling"})
        heartbeats.beat(conn, "beat", at, {"runs_started": 1})
        heartbeats.beat(conn, "beat", at + timedelta(minutes=1), {"runs_started": 2})
    with sql_engine(url).begin() as conn:
        assert [(r.id, r.event_type, r.flow) for r in routes.list_routes(conn)] == [
            (route_id, "lead.created", "lead_handling")
        ]
        assert routes.delete_route(conn, route_id)
        assert not routes.delete_route(conn, route_id)
        assert heartbeats.last_beats(conn) == {"beat": at + timedelta(minutes=1)}


def test_the_migrations_built_the_same_tables(url: str) -> None:
    with sql_engine(url).connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    assert tables == {t for meta in TARGET_METADATA for t in meta.tables} | {"alembic_version"}


# ------------------------------------------------------------------------------------ durable time


def test_a_run_waits_and_its_due_timers_are_claimed_once(url: str) -> None:
    run_id = open_run(url)
    now = datetime.now(UTC)
    with sql_engine(url).begin() as conn:
        repo.mark_run_running(conn, run_id)
        assert waits.set_waiting(conn, run_id)
        waits.add_timer(conn, run_id, "nap", waits.SLEEP, now - timedelta(seconds=1))
        waits.add_timer(conn, run_id, "later", waits.SLEEP, now + timedelta(hours=1))
    assert envelope(url, run_id).status == "waiting"
    with sql_engine(url).begin() as conn:
        [timer] = waits.claim_due(conn, now, 10)
        assert (timer.run_id, timer.node_id) == (run_id, "nap")
    with sql_engine(url).begin() as conn:
        assert waits.claim_due(conn, now, 10) == []  # fired once
        assert waits.close_timers(conn, run_id) == 1  # the later one will not fire
        assert waits.claim_due(conn, now + timedelta(days=1), 10) == []
        assert repo.finish_run(conn, run_id, "cancelled")  # a waiting run can end


def test_signals_are_kept_once_per_id_and_taken_oldest_first(url: str) -> None:
    run_id = open_run(url)
    with sql_engine(url).begin() as conn:
        assert waits.add_signal(conn, run_id, "s1", "replied", {"n": 1})
        assert not waits.add_signal(conn, run_id, "s1", "replied", {"n": 9})
        assert waits.add_signal(conn, run_id, "s2", "replied", None)
        taken = waits.consume_signal(conn, run_id, "replied", "reply")
        assert taken is not None
        assert (taken.signal_id, taken.data) == ("s1", {"n": 1})
        wait_id = waits.open_wait(conn, run_id, "w", "approval", correlation="a@b.co")
        assert waits.correlated_runs(conn, "approval", "a@b.co") == [run_id]
        assert waits.close_wait(conn, wait_id, "signalled")
        assert not waits.close_wait(conn, wait_id, "timed_out")
        assert waits.correlated_runs(conn, "approval", "a@b.co") == []
