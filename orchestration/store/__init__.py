"""The run store: SQLAlchemy models, engines per process, the repository and migrations."""

from orchestration.store.db import get_engine, reset_engines
from orchestration.store.models import Base

__all__ = ["Base", "get_engine", "reset_engines"]
