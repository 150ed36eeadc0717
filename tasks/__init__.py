"""The Celery binding: the only package that ties agents and the engine to Celery.

- ``tasks.catalog``: the built-in agents' specs (name, pool, limits, retries); ``register(registry)``.
- ``tasks.agent_tasks``: one Celery task per agent, ``campaignflow.agent.<name>``.
- ``tasks.engine_tasks``: join, branch, map, the run-failure errback and the sweeper.
- ``tasks.public``: the stable entry points other services call by name.

Each task module has ``bind(runtime)``; ``orchestration.bootstrap`` calls it. Nothing binds at import.
"""
