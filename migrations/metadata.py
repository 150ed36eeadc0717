"""Every table the migrations build: the run store's and the ones the agents own."""

from __future__ import annotations

import sqlalchemy as sa

from agents.tables import metadata as agent_tables
from orchestration.store.tables import metadata as store_tables

#: What ``alembic revision --autogenerate`` and the drift test compare the database with.
TARGET_METADATA: tuple[sa.MetaData, ...] = (store_tables, agent_tables)


def table_names() -> set[str]:
    return {name for meta in TARGET_METADATA for name in meta.tables}
