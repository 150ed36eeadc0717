"""Alembic migrations of every table: the run store's and the agents' own (the package makes them
findable when installed; ``metadata`` lists the tables they build)."""
