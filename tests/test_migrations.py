"""The migrations build the schema from empty, have one head, match the models, and revert."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from migrations.metadata import TARGET_METADATA, table_names
from orchestration.store import counters, migrate, rejected, sql_engine
from orchestration.store.jsontext import store_json
from orchestration.store.metadata import JSONType
from tests.support import services


@pytest.fixture
def empty_schema() -> Iterator[str]:
    services.check_services()
    schema = services.new_schema_name("cf_mig")
    services.create_schema(schema)
    url = services.schema_url(schema)
    yield url
    sql_engine(url).dispose()
    services.drop_schema(schema)


def _tables(url: str) -> set[str]:
    with sql_engine(url).connect() as conn:
        return set(sa.inspect(conn).get_table_names())


def test_every_table_is_covered_agents_included() -> None:
    assert {"run", "step_record", "campaign", "crm_contact", "delivery"} <= table_names()


def test_upgrade_from_empty_builds_every_table(empty_schema: str) -> None:
    assert _tables(empty_schema) == set()
    migrate.upgrade(empty_schema)
    assert _tables(empty_schema) == table_names() | {"alembic_version"}
    assert migrate.at_head(empty_schema)


def test_exactly_one_head() -> None:
    assert len(migrate.heads()) == 1


def test_models_and_migrations_do_not_drift(empty_schema: str) -> None:
    migrate.upgrade(empty_schema)
    with sql_engine(empty_schema).connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        diff = compare_metadata(ctx, list(TARGET_METADATA))  # type: ignore[arg-type]  # a list is supported
    assert diff == []


def test_downgrade_to_base_and_up_again(empty_schema: str) -> None:
    migrate.upgrade(empty_schema)
    migrate.downgrade(empty_schema, "base")
    assert _tables(empty_schema) == {"alembic_version"}
    migrate.upgrade(empty_schema)
    assert migrate.at_head(empty_schema)


def test_migrations_also_build_the_embedded_sqlite_store(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/runs.db"
    migrate.upgrade(url)
    assert _tables(url) == table_names() | {"alembic_version"}
    migrate.downgrade(url, "base")
    assert _tables(url) == {"alembic_version"}


def test_rejected_bodies_move_to_safe_text_and_back(empty_schema: str, tmp_path: object) -> None:
    """A JSONB body becomes JSON text; going back, escapes JSONB refuses become U+FFFD and a body
    kept in part becomes one JSON string, on Postgres and on SQLite."""
    bodies = {
        "plain": ({"id": "a", "payload": {"x": "é"}}, True),
        "nul": ({"id": "b", "payload": {"x": "a\u0000b", "y": "\ud800"}}, True),
        "cut": ('{"id": "c", "payload": {"x": "xxxx', False),
    }
    for url in (empty_schema, f"sqlite:///{tmp_path}/runs.db"):
        migrate.upgrade(url, "0003")
        with sql_engine(url).begin() as conn:
            conn.execute(
                rejected_t_0003().insert(),
                [{"event_id": "a", "raw": bodies["plain"][0], "reason": "r", "problems": []}],
            )
        migrate.upgrade(url)
        with sql_engine(url).begin() as conn:
            [old] = rejected.list_rejected(conn, None, 10)
            assert json.loads(old.raw) == bodies["plain"][0]
            assert old.raw_complete
            for name in ("nul", "cut"):
                value, complete = bodies[name]
                text = value if isinstance(value, str) else store_json(value).text
                rejected.insert_rejected(
                    conn,
                    {"event_id": name, "raw": text, "raw_complete": complete, "reason": "r", "problems": []},
                )
        migrate.downgrade(url, "0003")
        with sql_engine(url).connect() as conn:
            raws = {r.event_id: r.raw for r in conn.execute(rejected_t_0003().select())}
        if url == empty_schema:  # JSONB takes neither a NUL nor a lone surrogate
            assert raws["nul"] == {"id": "b", "payload": {"x": "a\ufffdb", "y": "\ufffd"}}
        assert raws["a"] == bodies["plain"][0]
        assert raws["cut"] == bodies["cut"][0]
        migrate.downgrade(url, "base")


def rejected_t_0003() -> sa.Table:
    """``rejected_event`` as revision 0003 left it (the body in a JSON column)."""
    return sa.Table(
        "rejected_event",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("event_id", sa.String(200)),
        sa.Column("raw", JSONType),
        sa.Column("reason", sa.Text),
        sa.Column("problems", JSONType),
    )


def test_run_counters_start_from_the_runs_already_stored_and_count_on(
    empty_schema: str, tmp_path: object
) -> None:
    """0009 on a store with runs: the counters are seeded from them (its indexes built
    concurrently on Postgres, the table having rows), and every later transition is counted."""
    run_t = sa.table(
        "run",
        *(sa.column(c) for c in ("run_id", "flow_name", "flow_version", "flow_def", "status", "payload")),
        sa.column("extra"),
        sa.column("started_at"),
    )
    started = datetime.now(UTC)
    for url in (empty_schema, f"sqlite:///{tmp_path}/runs.db"):
        migrate.upgrade(url, "0006")
        with sql_engine(url).begin() as conn:
            for run_id, status in (("a", "succeeded"), ("b", "failed"), ("c", "running"), ("d", "queued")):
                conn.execute(
                    run_t.insert().values(
                        run_id=run_id,
                        flow_name="old",
                        flow_version="1",
                        flow_def=sa.cast(sa.literal("{}"), JSONType),
                        status=status,
                        payload=sa.cast(sa.literal("{}"), JSONType),
                        extra=sa.cast(sa.literal("{}"), JSONType),
                        started_at=None if status == "queued" else started,
                    )
                )
        migrate.upgrade(url)
        with sql_engine(url).begin() as conn:
            assert counters.totals(conn) == {
                ("old", "started", "running"): 3,
                ("old", "finished", "succeeded"): 1,
                ("old", "finished", "failed"): 1,
            }
            conn.execute(run_t.update().where(run_t.c.run_id == "c").values(status="succeeded"))
            conn.execute(run_t.update().where(run_t.c.run_id == "d").values(status="running"))
            assert counters.totals(conn)[("old", "finished", "succeeded")] == 2
            assert counters.totals(conn)[("old", "started", "running")] == 4
        indexes = {i["name"] for i in sa.inspect(sql_engine(url)).get_indexes("run")}
        assert "ix_run__finished_at" in indexes
        migrate.downgrade(url, "0006")
        migrate.downgrade(url, "base")
