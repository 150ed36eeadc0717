"""Where a step's record write goes: one autocommit statement, or a transaction when it also ends the run."""

from __future__ import annotations

from contextlib import AbstractContextManager

from sqlalchemy.engine import Connection

from orchestration.store import step_writer


def writer(ends_run: bool) -> AbstractContextManager[Connection]:
    """Where a record write goes: autocommit, unless it also ends the run on a database that needs a
    transaction to make the two writes one (the store knows which one does)."""
    return step_writer(ends_run)
