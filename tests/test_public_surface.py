"""The public surface, pinned: the Python API (``orchestration.__all__``), the command tree of
``campaignflow`` and the ``CAMPAIGNFLOW_*`` settings. Changing any of them must change this file and
add a line to the CHANGELOG (docs: DESIGN "The public contract"). Public task names are pinned in
``tests/test_public_tasks.py``."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

import orchestration
from orchestration.cli.main import cli
from orchestration.errors import CampaignflowError
from orchestration.settings import Settings

ROOT = Path(__file__).resolve().parents[1]

PUBLIC_API = [
    # Wiring
    "Runtime",
    # Engine
    "OrchestrationEngine",
    # Control plane
    "CampaignManager",
    "CampaignSpec",
    "Event",
    "Route",
    # Orchestrators
    "BaseOrchestrator",
    "FlowRunner",
    "RunHandle",
    # Flows
    "Flow",
    "FlowCatalog",
    "RetryPolicy",
    "load_flow",
    "parse_flow",
    # Registry
    "AgentSpec",
    "Registry",
    # Envelope
    "Envelope",
    "RunMetadata",
    "StepRecord",
    # Settings
    "Settings",
    "get_settings",
    # Errors
    "AlreadyReplayedError",
    "ApiError",
    "CampaignExistsError",
    "CampaignNotFoundError",
    "CampaignflowError",
    "ConfigurationError",
    "DeadLetterNotFoundError",
    "EventRejectedError",
    "EventValidationError",
    "FieldError",
    "FlowValidationError",
    "IncompleteBodyError",
    "NotReplayableError",
    "RefSyntaxError",
    "RejectedNotFoundError",
    "RouteNotFoundError",
    "RunNotFoundError",
    "RunStateError",
    "StepFailedError",
    "StoreUnavailable",
    "SuppressionNotFoundError",
    "Throttled",
    "TimingError",
    "UnknownAgentError",
    "UnknownFlowError",
    "UnknownNameError",
    "UnknownOrchestratorError",
    # Client
    "CampaignflowClient",
]

#: Every command of ``campaignflow``, with its sub-commands.
COMMANDS = {
    "api",
    "beat",
    "bench",
    "campaigns add",
    "campaigns list",
    "campaigns pause",
    "campaigns resume",
    "campaigns tick",
    "compose render",
    "db current",
    "db downgrade",
    "db upgrade",
    "deadletters list",
    "deadletters purge",
    "deadletters replay",
    "deadletters show",
    "demo",
    "doctor",
    "flower",
    "flows graph",
    "flows list",
    "flows validate",
    "ingest",
    "limits",
    "metrics serve",
    "metrics show",
    "rejected list",
    "rejected purge",
    "rejected replay",
    "rejected show",
    "routes add",
    "routes list",
    "routes remove",
    "runs approve",
    "runs cancel",
    "runs list",
    "runs purge",
    "runs retry",
    "runs show",
    "suppression add",
    "suppression list",
    "suppression remove",
    "runs signal",
    "worker",
}

#: The commands that print data, and so take ``--json``.
JSON_COMMANDS = {
    "bench",
    "campaigns list",
    "campaigns tick",
    "db current",
    "deadletters list",
    "deadletters purge",
    "deadletters replay",
    "deadletters show",
    "demo",
    "doctor",
    "flows list",
    "ingest",
    "limits",
    "rejected list",
    "rejected purge",
    "rejected replay",
    "rejected show",
    "routes list",
    "runs approve",
    "runs cancel",
    "runs list",
    "runs purge",
    "runs retry",
    "runs show",
    "suppression add",
    "suppression list",
    "suppression remove",
    "runs signal",
}

SETTINGS = {
    "CAMPAIGNFLOW_AGENT_MODULES",
    "CAMPAIGNFLOW_API_MAX_BODY_BYTES",
    "CAMPAIGNFLOW_API_TOKENS",
    "CAMPAIGNFLOW_BROKER_URL",
    "CAMPAIGNFLOW_CAMPAIGN_TICK_INTERVAL",
    "CAMPAIGNFLOW_DATABASE_URL",
    "CAMPAIGNFLOW_DATA_DIR",
    "CAMPAIGNFLOW_DOMAIN_BACKOFF_MAX_SECONDS",
    "CAMPAIGNFLOW_DOMAIN_BACKOFF_SECONDS",
    "CAMPAIGNFLOW_FLOWER_BASIC_AUTH",
    "CAMPAIGNFLOW_FLOWER_URL",
    "CAMPAIGNFLOW_FLOWS_DIR",
    "CAMPAIGNFLOW_FREQUENCY_CAP_CAMPAIGN_DAY",
    "CAMPAIGNFLOW_FREQUENCY_CAP_CAMPAIGN_WEEK",
    "CAMPAIGNFLOW_FREQUENCY_CAP_DAY",
    "CAMPAIGNFLOW_FREQUENCY_CAP_WEEK",
    "CAMPAIGNFLOW_LIMITS",
    "CAMPAIGNFLOW_LIMIT_LEASE_SECONDS",
    "CAMPAIGNFLOW_LLM_API_KEY",
    "CAMPAIGNFLOW_LLM_BASE_URL",
    "CAMPAIGNFLOW_LLM_MODEL",
    "CAMPAIGNFLOW_LOG_JSON",
    "CAMPAIGNFLOW_MAX_EVENT_BYTES",
    "CAMPAIGNFLOW_MAX_REDRIVES",
    "CAMPAIGNFLOW_PLUGINS",
    "CAMPAIGNFLOW_REDIS_KEY_PREFIX",
    "CAMPAIGNFLOW_RELAY_INTERVAL",
    "CAMPAIGNFLOW_RESULT_BACKEND",
    "CAMPAIGNFLOW_RETENTION_DEAD_LETTERS",
    "CAMPAIGNFLOW_RETENTION_INTERVAL",
    "CAMPAIGNFLOW_RETENTION_REJECTED",
    "CAMPAIGNFLOW_RETENTION_RUNS",
    "CAMPAIGNFLOW_ROUTES_FILE",
    "CAMPAIGNFLOW_SMTP_URL",
    "CAMPAIGNFLOW_STALL_SECONDS",
    "CAMPAIGNFLOW_STORE_OUTAGE_SECONDS",
    "CAMPAIGNFLOW_SWEEP_INTERVAL",
    "CAMPAIGNFLOW_TASK_EVENTS",
    "CAMPAIGNFLOW_TIMER_INTERVAL",
    "CAMPAIGNFLOW_UNACKED_RESTORE_INTERVAL",
    "CAMPAIGNFLOW_UNSUBSCRIBE_MAILTO",
    "CAMPAIGNFLOW_UNSUBSCRIBE_SECRET",
    "CAMPAIGNFLOW_UNSUBSCRIBE_URL",
    "CAMPAIGNFLOW_VISIBILITY_TIMEOUT",
    "CAMPAIGNFLOW_WEBHOOK_SECRETS",
    "CAMPAIGNFLOW_WEBHOOK_TOLERANCE_SECONDS",
}


# --------------------------------------------------------------------------------- Python API


def test_all_is_pinned_in_its_groups() -> None:
    assert orchestration.__all__ == PUBLIC_API
    source = (ROOT / "orchestration" / "__init__.py").read_text(encoding="utf-8")
    groups = re.findall(r"^    # (\w[\w ]*)$", source.split("__all__ = [", 1)[1].split("]", 1)[0], re.M)
    assert groups == [
        "Wiring",
        "Engine",
        "Control plane",
        "Orchestrators",
        "Flows",
        "Registry",
        "Envelope",
        "Settings",
        "Errors",
        "Client",
    ]


def test_every_public_name_resolves_from_its_module() -> None:
    for name in orchestration.__all__:
        value = getattr(orchestration, name)
        assert getattr(value, "__name__", None) == name, name
        assert value.__module__.startswith("orchestration."), (name, value.__module__)
        assert name in dir(orchestration)
    assert orchestration.Flow is __import__("orchestration.flows", fromlist=["Flow"]).Flow
    with pytest.raises(AttributeError, match="no_such_name"):
        orchestration.no_such_name  # noqa: B018


def test_every_campaignflow_error_is_exported() -> None:
    for name in orchestration.__all__:
        getattr(orchestration, name)  # loads every module that defines a public error

    def subclasses(cls: type) -> set[type]:
        found: set[type] = set()
        subs: list[type] = cls.__subclasses__()
        for sub in subs:
            found |= {sub, *subclasses(sub)}
        return found

    defined = {
        c.__name__
        for c in subclasses(CampaignflowError)
        if c.__module__.startswith("orchestration.") and not c.__name__.startswith("_")
    }
    exported = {
        n
        for n in orchestration.__all__
        if inspect.isclass(getattr(orchestration, n)) and issubclass(getattr(orchestration, n), BaseException)
    }
    assert defined <= exported, f"export these errors (or make them private): {sorted(defined - exported)}"
    for name in exported:
        value = getattr(orchestration, name)
        assert inspect.isclass(value), name
        assert issubclass(value, CampaignflowError), name


def _fresh(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_import_is_cheap_and_each_name_loads_alone_without_a_cycle() -> None:
    # importing the package imports nothing else of ours, nor the heavy libraries
    cheap = _fresh(
        "import sys, orchestration\n"
        "heavy = ('celery', 'kombu', 'sqlalchemy', 'pydantic', 'rich', 'typer', 'yaml')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('orchestration', *heavy)))"
    )
    # each defining module, first in a fresh interpreter: a cycle would fail here
    modules = sorted(set(orchestration._EXPORTS.values()))
    procs = {
        module: _fresh(
            "import orchestration\n"
            + "".join(f"orchestration.{n}\n" for n, m in orchestration._EXPORTS.items() if m == module)
        )
        for module in modules
    }
    out, err = cheap.communicate(timeout=120)
    assert cheap.returncode == 0, err
    assert out.strip() == "['orchestration']"
    failed: dict[str, Any] = {}
    for module, proc in procs.items():
        _, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            failed[module] = err.strip().splitlines()[-1:]
    assert not failed, failed


# ------------------------------------------------------------------------------ command line


def _commands(cmd: Any, path: tuple[str, ...] = ()) -> dict[str, Any]:
    """Leaf commands by their full name (``runs list``), walked from the click command object."""
    subs = getattr(cmd, "commands", None)
    if subs is None:
        return {" ".join(path): cmd}
    found: dict[str, Any] = {}
    for name, sub in subs.items():
        found.update(_commands(sub, (*path, name)))
    return found


def test_command_tree_is_pinned() -> None:
    commands = _commands(typer.main.get_command(cli))
    assert set(commands) == COMMANDS
    with_json = {name for name, cmd in commands.items() if any("--json" in p.opts for p in cmd.params)}
    assert with_json == JSON_COMMANDS


# ---------------------------------------------------------------------------------- settings


def test_settings_names_are_pinned_and_documented() -> None:
    prefix = Settings.model_config.get("env_prefix")
    assert prefix == "CAMPAIGNFLOW_"
    names = {f"{prefix}{field.upper()}" for field in Settings.model_fields}
    assert names == SETTINGS
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(CAMPAIGNFLOW_[A-Z_]+)` \|", readme, re.M))
    documented = {n for n in documented if not n.startswith("CAMPAIGNFLOW_TEST_")}  # the test services
    assert documented == SETTINGS, "the README's configuration table lists every setting"
