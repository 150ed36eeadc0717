"""campaignflow: multi-step agent workflows on Celery.

The import package ``orchestration`` holds the engine, the flow language, the run store and the
control plane. Agents live in ``agents`` (plain Python) and their Celery binding in ``tasks``.
"""

__version__ = "0.1.0"
