"""The run store: SQLAlchemy models, engines per process, the repository and migrations."""

from orchestration.store.db import reset_engines, sql_engine
from orchestration.store.metadata import Base
from orchestration.store.queries import step_writer
from orchestration.store.tables import metadata

__all__ = ["Base", "metadata", "reset_engines", "sql_engine", "step_writer"]
