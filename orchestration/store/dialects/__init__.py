"""One implementation per database of the SQL that differs between them (see ``base``); the store
picks one per engine with :func:`orchestration.store.queries.queries`."""
