"""The engine: compiles flows to Celery canvas, runs each step against the store, runs flows inline."""
