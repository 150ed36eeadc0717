"""The one place where a campaignflow process is wired: ``bootstrap(app, registry, settings)``.

Every entry point calls it once (the worker and beat through ``orchestration.app``, the CLI, the
embedded demo, the test fixtures). It

1. makes ``settings`` the process's settings;
2. imports the agent modules named by ``CAMPAIGNFLOW_AGENT_MODULES`` and ``CAMPAIGNFLOW_PLUGINS``
   and calls each one's ``register(registry)``;
3. registers the built-in orchestrators;
4. configures the Celery app from the settings and the registry: broker, result backend, transport
   options, one queue per agent pool, the router, beat's schedule (sweeper, campaign tick, outbox
   relay);
5. binds the Celery tasks: each module of :data:`TASK_MODULES` has ``bind(runtime)``;
6. connects the signal receivers (step logs, step metrics, dead letters, fresh database pools after
   a fork) and puts the guard on kombu's Redis channel (``engine.broker_guard``: a worker survives a
   Redis restart);
7. installs the :class:`~orchestration.runtime.Runtime` that the rest of the process reads.

Nothing registers at import time. The task modules live in ``tasks/`` and are imported here by name,
the way Celery's own ``include`` works, so ``orchestration`` never imports ``tasks`` or ``agents``.
"""

from __future__ import annotations

import importlib
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from orchestration.engine import broker_guard, deadletters, signals
from orchestration.errors import ConfigurationError
from orchestration.flows.limits import parse_limits_setting
from orchestration.names import (
    CAMPAIGN_TICK_SCHEDULE_ENTRY,
    CAMPAIGN_TICK_TASK,
    REDIS_PRIORITY_STEPS,
    RELAY_SCHEDULE_ENTRY,
    RELAY_TASK,
    RETENTION_SCHEDULE_ENTRY,
    RETENTION_TASK,
    SWEEP_SCHEDULE_ENTRY,
    SWEEP_TASK,
    TIMERS_SCHEDULE_ENTRY,
    TIMERS_TASK,
)
from orchestration.orchestrators import BUILTIN_ORCHESTRATORS
from orchestration.registry import Registry
from orchestration.runtime import Runtime, install, installed
from orchestration.settings import Settings, configure, get_settings
from orchestration.store.db import reset_engines

#: The modules that bind Celery tasks, each with ``bind(runtime) -> list[str]`` (the task names).
TASK_MODULES = (
    "tasks.agent_tasks",
    "tasks.engine_tasks",
    "tasks.wait_tasks",
    "tasks.public",
    "tasks.bench_tasks",
)


def create_app() -> Celery:
    """A Celery app with campaignflow's static settings (``celeryconfig``), no tasks yet."""
    app = Celery("campaignflow")
    app.config_from_object("celeryconfig", force=True)
    return app


def bootstrap(
    app: Celery | None = None, registry: Registry | None = None, settings: Settings | None = None
) -> Runtime:
    """Wire this process and return its runtime.

    Called with no arguments when the process is already wired, it returns the installed runtime;
    otherwise it builds a new app and registry from the (given or environment) settings.
    """
    existing = installed()
    if existing is not None and app is None and registry is None and settings is None:
        return existing
    if settings is not None:
        configure(settings)
    settings = get_settings()
    registry = registry if registry is not None else Registry()
    app = app if app is not None else create_app()
    load_agent_modules(registry, settings)
    _check_limits(registry, settings)
    for cls in BUILTIN_ORCHESTRATORS:
        if cls.name not in registry.orchestrator_names():
            registry.add_orchestrator(cls)
    configure_app(app, registry, settings)
    runtime = Runtime(app=app, registry=registry, settings=settings)
    install(runtime)
    for name in TASK_MODULES:
        runtime.bound_tasks.extend(_module(name, "bind").bind(runtime))
    signals.connect()
    deadletters.connect()
    broker_guard.install()
    worker_process_init.connect(_fresh_engines, weak=False, dispatch_uid="campaignflow.fresh_engines")
    return runtime


def _check_limits(registry: Registry, settings: Settings) -> None:
    """``CAMPAIGNFLOW_LIMITS`` is read at start-up: one error naming the agent and the field."""
    try:
        limits = parse_limits_setting(settings.limits)
    except ValueError as exc:
        raise ConfigurationError(f"CAMPAIGNFLOW_LIMITS: {exc}") from None
    unknown = sorted(set(limits) - set(registry.agent_names()))
    if unknown:
        known = ", ".join(registry.agent_names())
        raise ConfigurationError(f"CAMPAIGNFLOW_LIMITS: unknown agent {unknown[0]!r} (registered: {known})")


def load_agent_modules(registry: Registry, settings: Settings) -> None:
    """Import each agent module and plugin and let it register its agents (and flows) once."""
    for name in settings.module_names():
        register = _module(name, "register").register
        try:
            register(registry)
        except Exception as exc:
            raise ConfigurationError(
                f"module {name!r} (CAMPAIGNFLOW_AGENT_MODULES / CAMPAIGNFLOW_PLUGINS): register() failed: "
                f"{type(exc).__name__}: {exc}; fix the module or remove it from the setting"
            ) from exc


def _module(name: str, function: str) -> Any:
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise ConfigurationError(
            f"module {name!r} (CAMPAIGNFLOW_AGENT_MODULES / CAMPAIGNFLOW_PLUGINS) cannot be imported: {exc}; "
            "check the name and that it is installed"
        ) from exc
    except Exception as exc:  # the module itself fails while it is imported
        raise ConfigurationError(
            f"module {name!r} (CAMPAIGNFLOW_AGENT_MODULES / CAMPAIGNFLOW_PLUGINS) failed while importing: "
            f"{type(exc).__name__}: {exc}; fix the module or remove it from the setting"
        ) from exc
    if not callable(getattr(module, function, None)):
        raise ConfigurationError(f"module {name!r} has no {function}() function; add one")
    return module


def configure_app(app: Celery, registry: Registry, settings: Settings) -> None:
    """The Celery settings that come from the environment and the registry."""
    broker_url = settings.effective_broker_url()
    transport: dict[str, Any] = {}
    conf: dict[str, Any] = {}
    if settings.embedded or broker_url.startswith(("memory://", "sqla+", "filesystem://")):
        transport["polling_interval"] = 0.01
    else:
        transport["visibility_timeout"] = settings.visibility_timeout
        conf["visibility_timeout"] = settings.visibility_timeout
        if settings.unacked_restore_interval is not None:
            transport["unacked_restore_interval"] = settings.unacked_restore_interval
            transport["unacked_restore_throttle"] = settings.unacked_restore_interval
    if broker_url.startswith(("redis://", "rediss://")):
        # a run's priority is its messages' priority: every level its own list (engine.priority)
        transport["priority_steps"] = list(REDIS_PRIORITY_STEPS)
        conf["task_inherit_parent_priority"] = True
    if settings.redis_key_prefix:
        transport["global_keyprefix"] = settings.redis_key_prefix
    app.conf.update(
        broker_url=broker_url,
        result_backend=settings.effective_result_backend(),
        broker_transport_options=transport,
        result_backend_transport_options={
            k: v for k, v in transport.items() if k in ("visibility_timeout", "global_keyprefix")
        },
        task_queues=registry.queues(),
        # a message the worker cannot decode becomes a dead letter (orchestration.engine.deadletters)
        worker_consumer=deadletters.CONSUMER,
        worker_send_task_events=settings.task_events,
        task_send_sent_event=settings.task_events,
        task_routes=(registry.route,),
        beat_schedule={
            SWEEP_SCHEDULE_ENTRY: {"task": SWEEP_TASK, "schedule": settings.sweep_interval},
            CAMPAIGN_TICK_SCHEDULE_ENTRY: {
                "task": CAMPAIGN_TICK_TASK,
                "schedule": settings.campaign_tick_interval,
            },
            RELAY_SCHEDULE_ENTRY: {"task": RELAY_TASK, "schedule": settings.relay_interval},
            TIMERS_SCHEDULE_ENTRY: {
                "task": TIMERS_TASK,
                "schedule": settings.timer_interval,
                # a pass nobody took in time is dropped, not piled up: the next one fires the same
                "options": {"expires": max(10.0, settings.timer_interval * 10)},
            },
            RETENTION_SCHEDULE_ENTRY: {"task": RETENTION_TASK, "schedule": settings.retention_interval},
        },
        **conf,
    )


def _fresh_engines(**_: Any) -> None:
    """A forked pool child must not reuse the parent's database connections."""
    reset_engines()
