"""One error tree: every exception class campaignflow defines derives from CampaignflowError and says
when it is raised; the agents' errors (agents import nothing of ours) derive from AgentError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import agents
import agents.errors
import orchestration
from orchestration.errors import CampaignflowError

#: Not errors anyone raises: the root itself and the private base of errors built from fields.
NOT_RAISED = {"CampaignflowError", "_Formatted"}


def _error_classes(package: object) -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    path = package.__path__  # type: ignore[attr-defined]
    prefix = package.__name__ + "."  # type: ignore[attr-defined]
    for info in pkgutil.walk_packages(path, prefix):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == module.__name__:
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return list(found.values())


def test_every_orchestration_error_is_a_campaignflow_error_with_a_raised_when_docstring() -> None:
    classes = _error_classes(orchestration)
    assert len(classes) > 10
    for cls in classes:
        assert issubclass(cls, CampaignflowError), (
            f"{cls.__qualname__} does not derive from CampaignflowError"
        )
        if cls.__name__ not in NOT_RAISED:
            assert (cls.__doc__ or "").startswith("Raised "), (
                f"{cls.__qualname__}: docstring 'Raised when ...'"
            )


def test_agent_errors_have_their_own_root() -> None:
    for cls in _error_classes(agents):
        assert issubclass(cls, agents.errors.AgentError), cls.__qualname__
        assert (cls.__doc__ or "").startswith("Raised "), cls.__qualname__
