"""Outages: the run store drops its connections mid-step; the broker (a Redis of the test's own)
crashes and comes back empty. Every run still ends terminal with a complete envelope."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchestration.envelope import Envelope
from orchestration.orchestrators.base import FlowRunner
from orchestration.store.db import autocommit, sql_engine
from tests.support import services
from tests.support.flows import flow
from tests.support.private_redis import PrivateRedis
from tests.support.runs import envelope, record, wait_for_run
from tests.support.wait import eventually
from tests.support.wiring import engine, registry
from tests.support.workers import WorkerProcess, run_script

pytestmark = pytest.mark.crash


def _terminate_backends(app_name: str) -> int:
    """Terminate the connections of ``app_name`` and wait (up to 10 s) until each backend is gone."""
    engine = sa.create_engine(services.PG_BASE, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        killed = conn.execute(
            sa.text(
                "select count(pg_terminate_backend(pid, 10000)) from pg_stat_activity "
                "where application_name = :name and pid <> pg_backend_pid()"
            ),
            {"name": app_name},
        ).scalar_one()
    engine.dispose()
    return int(killed)


def test_database_connections_cut_mid_step(worker: object, database: str) -> None:
    f = flow([{"id": "slow", "agent": "sleep", "input": {"seconds": 1.0}}, {"id": "after", "agent": "noop"}])

    handle = FlowRunner(engine(), f).run({}, mode="async")
    eventually(lambda: envelope(handle.run_id).record("slow") is not None, 10, "step slow to start")
    app_name = database.rsplit("application_name=", 1)[1]
    assert _terminate_backends(app_name) >= 1  # the worker's pooled connections die under it

    def ended() -> Envelope:
        try:
            env = envelope(handle.run_id)
        except sa.exc.OperationalError as exc:  # this process's pool lost its connections too
            raise AssertionError(f"store not readable yet: {exc}") from exc
        assert env.terminal, f"still {env.status}"
        return env

    env = eventually(ended, 70, f"run {handle.run_id} to end")
    assert env.status == "succeeded", env.model_dump_json(indent=2)
    assert [r.step_id for r in env.records] == ["slow", "after"]
    assert record(env, "after").attempts == 1


def test_the_first_statements_after_the_connections_are_cut_succeed(worker: object, database: str) -> None:
    """Both pools hold idle connections when the database drops them all (a restart, a failover):
    each checkout sees that the server closed its connection, pings it and replaces the dead one, so
    no statement fails on one."""

    def select_one(conn: sa.Connection) -> int:
        driver = conn.connection.driver_connection
        assert driver is not None
        return int(driver.execute("select 1").fetchone()[0])

    with contextlib.ExitStack() as stack:  # five connections at once: five idle ones afterwards
        held = [stack.enter_context(autocommit()) for _ in range(5)]
        assert [select_one(c) for c in held] == [1] * 5
    with sql_engine().connect() as conn:  # and one in the transaction pool
        assert conn.execute(sa.text("select 1")).scalar_one() == 1
    assert _terminate_backends(database.rsplit("application_name=", 1)[1]) >= 6
    with contextlib.ExitStack() as stack:
        held = [stack.enter_context(autocommit()) for _ in range(5)]
        assert [select_one(c) for c in held] == [1] * 5
    with sql_engine().connect() as conn:
        assert conn.execute(sa.text("select 1")).scalar_one() == 1


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    r = PrivateRedis(tmp_path)  # no persistence: a crash loses every queued message
    r.start()
    yield r
    r.stop()


def test_broker_crash_loses_queued_messages_and_the_sweeper_redrives(
    database: str, clean_db: str, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "CAMPAIGNFLOW_BROKER_URL": f"redis://127.0.0.1:{private_redis.port}/0",
        "CAMPAIGNFLOW_RESULT_BACKEND": f"redis://127.0.0.1:{private_redis.port}/1",
        "CAMPAIGNFLOW_REDIS_KEY_PREFIX": "",
    }
    worker = WorkerProcess("outage", [], concurrency=1, log_dir=tmp_path)

    worker.queues = registry.queue_names()
    worker.start(**{k: v for k, v in env.items() if k.startswith("CAMPAIGNFLOW_")})
    try:
        steps = [
            {
                "kind": "parallel",
                "id": "fan",
                "members": [{"id": f"m{i}", "agent": "sleep", "input": {"seconds": 1.0}} for i in range(3)],
            },
            {"id": "done", "agent": "noop"},
        ]
        run_id = run_script(
            env,
            f"""
            from tests.support.wiring import engine
            from orchestration.flows import parse_flow
            from orchestration.orchestrators.base import FlowRunner
            from tests.support.wiring import registry
            f = parse_flow({json.dumps({"name": "outage", "steps": steps})}, registry)
            print(FlowRunner(engine(), f).run({{}}, mode="async").run_id)
        """,
        )

        def a_member_running() -> bool:
            assert any(r.status == "running" for r in envelope(run_id).records), worker.log()
            return True

        eventually(a_member_running, 30, "a member of fan to start")
        private_redis.crash()  # two members still queued and the chord counter are gone
        private_redis.start()

        def reconnected() -> bool:  # the worker lost the broker (cancelling its running member) and is back
            log = worker.log_path.read_text(errors="replace")
            lost = log.rfind("Connection to broker lost")
            assert lost >= 0, "the worker has not noticed the crash yet"
            assert "Connected to redis://" in log[lost:], "the worker has not reconnected yet"
            return True

        eventually(reconnected, 30, "the worker to lose the broker and reconnect")
        assert envelope(run_id).status == "running"  # and nothing is left to deliver: the run is stalled
        stall = sa.create_engine(database)
        with stall.begin() as conn:  # let the stall show: no progress for an hour
            conn.execute(
                sa.text("update run set updated_at = now() - interval '1 hour' where run_id = :r"),
                {"r": run_id},
            )
            conn.execute(
                sa.text("update step_record set updated_at = now() - interval '1 hour' where run_id = :r"),
                {"r": run_id},
            )
        stall.dispose()
        report = run_script(
            env,
            """
            from tests.support.wiring import engine
            from orchestration.control.sweeper import sweep
            print(sweep(engine(), stall_seconds=60, max_redrives=3).redriven)
        """,
        )
        assert run_id in report
        final = wait_for_run(run_id, timeout=60)
    finally:
        worker.stop()
    assert final.status == "succeeded", final.model_dump_json(indent=2)
    assert {r.step_id for r in final.records} == {"m0", "m1", "m2", "fan", "done"}
    assert final.metadata.redrives == 1
