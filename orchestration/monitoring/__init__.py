"""Operations: the Flower launcher, Prometheus metrics and structured logs.

``orchestration.monitoring.signals`` connects the worker hooks (step context for logs, step metrics);
``orchestration.app`` imports it, so every process that loads the app has them.
"""
