"""The test process's runtime: bootstrapped once (after ``tests/conftest.py`` has pointed the settings
at the test services), and the parts of it that tests use."""

from __future__ import annotations

from orchestration.bootstrap import bootstrap
from orchestration.engine.compiler import OrchestrationEngine
from orchestration.flows import FlowCatalog

RUNTIME = bootstrap()
app = RUNTIME.app
registry = RUNTIME.registry


def engine() -> OrchestrationEngine:
    return RUNTIME.engine


def flows() -> FlowCatalog:
    return RUNTIME.flows
