"""The migrations build the schema from empty, have one head, match the models, and revert."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from migrations.metadata import TARGET_METADATA, table_names
from orchestration.store import get_engine, migrate
from tests.support import services


@pytest.fixture
def empty_schema() -> Iterator[str]:
    services.check_services()
    schema = services.new_schema_name("cf_mig")
    services.create_schema(schema)
    url = services.schema_url(schema)
    yield url
    get_engine(url).dispose()
    services.drop_schema(schema)


def _tables(url: str) -> set[str]:
    with get_engine(url).connect() as conn:
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
    with get_engine(empty_schema).connect() as conn:
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
