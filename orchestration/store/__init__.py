"""The run store: SQLAlchemy models, engines per process, the repository and migrations."""

from orchestration.store.db import get_engine, reset_engines
from orchestration.store.metadata import Base
from orchestration.store.queries import step_writer
from orchestration.store.tables import metadata

__all__ = ["Base", "get_engine", "metadata", "reset_engines", "step_writer"]
