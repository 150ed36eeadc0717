"""Alembic migrations of the run store (the package makes them findable when installed)."""
