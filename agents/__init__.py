"""Operational agents: plain Python, one pydantic input and one output model each, no Celery.

An agent is ``handler(input_model, ctx) -> output_model``; ``ctx`` matches :class:`AgentContext`.
Nothing here imports campaignflow's other packages; ``tasks`` binds agents to Celery.
"""
