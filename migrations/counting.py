"""The triggers that count run transitions into ``run_counter`` (see
``orchestration.store.models.RunCounter``), one set per database.

Created by migration 0009. SQLite drops a table's triggers with the table, so a later migration
that rebuilds ``run`` there (``batch_alter_table``, e.g. to change its status check) must call
:func:`create_triggers` again after it; ``tests/test_store_dialects.py`` fails if it does not.
"""

from __future__ import annotations

from alembic import op

#: What counts: a run that starts (from ``queued``, or again after a retry) and a run that ends.
_STARTED = "NEW.status = 'running' AND OLD.status NOT IN ('running', 'waiting')"
_FINISHED = (
    "NEW.status IN ('succeeded', 'failed', 'cancelled') "
    "AND OLD.status NOT IN ('succeeded', 'failed', 'cancelled')"
)

_INSERT = "INSERT INTO run_counter (flow_name, kind, status, n) VALUES (NEW.flow_name, '{}', NEW.status, 1)"

_POSTGRES_FUNCTION = f"""
CREATE OR REPLACE FUNCTION run_counter_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF {_STARTED} THEN
        {_INSERT.format("started")};
    ELSIF {_FINISHED} THEN
        {_INSERT.format("finished")};
    END IF;
    RETURN NULL;
END
$$
"""
_POSTGRES_TRIGGER = """
CREATE TRIGGER run_counter_count AFTER UPDATE OF status ON run FOR EACH ROW
WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION run_counter_count()
"""


def _sqlite_trigger(kind: str, when: str) -> str:
    return f"""
CREATE TRIGGER run_counter_{kind} AFTER UPDATE OF status ON run
WHEN {when}
BEGIN
    {_INSERT.format(kind)};
END
"""


def create_triggers() -> None:
    """Count every later transition of ``run.status`` in ``run_counter``."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_POSTGRES_FUNCTION)
        op.execute(_POSTGRES_TRIGGER)
    else:
        op.execute(_sqlite_trigger("started", _STARTED))
        op.execute(_sqlite_trigger("finished", _FINISHED))


def drop_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS run_counter_count ON run")
        op.execute("DROP FUNCTION IF EXISTS run_counter_count()")
    else:
        op.execute("DROP TRIGGER IF EXISTS run_counter_started")
        op.execute("DROP TRIGGER IF EXISTS run_counter_finished")
