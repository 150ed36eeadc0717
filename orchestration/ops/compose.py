"""``compose.yaml``, rendered from the registry: one worker service per agent pool (its queue and
concurrency from the registry), the orchestration worker, one beat, Flower, the HTTP API, a one-shot
migrate job, Redis and Postgres. ``campaignflow compose render`` writes it; a test checks the committed
file is what the registry renders, so the two never drift.
"""

from __future__ import annotations

from typing import Any

import yaml

from orchestration.names import ENGINE_QUEUE
from orchestration.registry import Registry

HEADER = """\
# campaignflow: the production shape. GENERATED from the agent registry by
#   campaignflow compose render > compose.yaml
# Edit the registry (tasks/catalog.py) or orchestration/compose.py, not this file.
# Settings come from .env (copy .env.example and change every secret).
"""
IMAGE = "campaignflow:latest"
STATE_DIR = "/var/lib/campaignflow"
#: worker_soft_shutdown_timeout is 30 s; give workers time to requeue unacked messages on SIGTERM.
STOP_GRACE = "60s"
ORCHESTRATION_CONCURRENCY = 4


def _app_service(command: list[str], *, needs_migrate: bool = True) -> dict[str, Any]:
    depends: dict[str, Any] = {
        "redis": {"condition": "service_healthy"},
        "postgres": {"condition": "service_healthy"},
    }
    if needs_migrate:
        depends["migrate"] = {"condition": "service_completed_successfully"}
    return {
        "image": IMAGE,
        "build": ".",
        "env_file": [".env"],
        "command": command,
        "depends_on": depends,
        "restart": "unless-stopped",
    }


def _worker(pool: str, concurrency: int) -> dict[str, Any]:
    service = _app_service(["campaignflow", "worker", "--pool", pool, "-c", str(concurrency)])
    service["stop_grace_period"] = STOP_GRACE
    service["healthcheck"] = {
        # the worker names itself <pool>@<hostname>; ping exactly that node
        "test": [
            "CMD-SHELL",
            f"celery -A orchestration.app inspect ping -d {pool}@$${{HOSTNAME}} -t 10 >/dev/null",
        ],
        "interval": "30s",
        "timeout": "20s",
        "retries": 3,
        "start_period": "30s",
    }
    return service


def services(registry: Registry) -> dict[str, Any]:
    svc: dict[str, Any] = {
        "redis": {
            "image": "redis:7.4-alpine",
            # AOF on, never evict: an evicted queue or binding key is a lost message
            "command": [
                "redis-server",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--maxmemory-policy",
                "noeviction",
            ],
            "volumes": ["redis-data:/data"],
            "healthcheck": {
                "test": ["CMD", "redis-cli", "ping"],
                "interval": "5s",
                "timeout": "3s",
                "retries": 20,
            },
            "restart": "unless-stopped",
        },
        "postgres": {
            "image": "postgres:16-alpine",
            "environment": {
                "POSTGRES_USER": "${POSTGRES_USER:-campaignflow}",
                "POSTGRES_PASSWORD": "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in .env}",
                "POSTGRES_DB": "${POSTGRES_DB:-campaignflow}",
            },
            "volumes": ["postgres-data:/var/lib/postgresql/data"],
            "healthcheck": {
                "test": ["CMD-SHELL", "pg_isready -U $${POSTGRES_USER} -d $${POSTGRES_DB}"],
                "interval": "5s",
                "timeout": "3s",
                "retries": 20,
            },
            "restart": "unless-stopped",
        },
        "migrate": {
            **_app_service(["campaignflow", "db", "upgrade"], needs_migrate=False),
            "restart": "no",
        },
    }
    for pool, concurrency in registry.pools().items():
        svc[f"worker-{pool}"] = _worker(pool, concurrency)
    svc[f"worker-{ENGINE_QUEUE}"] = _worker(ENGINE_QUEUE, ORCHESTRATION_CONCURRENCY)
    svc["beat"] = {
        # exactly one: a second beat would send every entry twice
        **_app_service(["campaignflow", "beat", "--schedule", f"{STATE_DIR}/celerybeat-schedule"]),
        "volumes": [f"beat-data:{STATE_DIR}"],
        "deploy": {"replicas": 1},
    }
    svc["flower"] = {
        # --address 0.0.0.0: reachable from the published port (the command defaults to loopback)
        **_app_service(["campaignflow", "flower", "--port", "5555", "--address", "0.0.0.0"]),
        "environment": {
            "CAMPAIGNFLOW_FLOWER_BASIC_AUTH": (
                "${CAMPAIGNFLOW_FLOWER_BASIC_AUTH:?set CAMPAIGNFLOW_FLOWER_BASIC_AUTH=user:password in .env}"
            ),
        },
        # internal only: put a TLS proxy in front before exposing it
        "ports": ["127.0.0.1:5555:5555"],
        "healthcheck": _http_check("http://127.0.0.1:5555/healthcheck"),
    }
    svc["api"] = {
        # the HTTP API; refuses to start without tokens (compose refuses first, naming the variable)
        **_app_service(["campaignflow", "api", "--port", "8080", "--address", "0.0.0.0"]),
        "environment": {
            "CAMPAIGNFLOW_API_TOKENS": (
                "${CAMPAIGNFLOW_API_TOKENS:?set CAMPAIGNFLOW_API_TOKENS=name:token:role in .env}"
            ),
        },
        # loopback only: put a TLS proxy in front before exposing it
        "ports": ["127.0.0.1:8080:8080"],
        "stop_grace_period": STOP_GRACE,
        "healthcheck": _http_check("http://127.0.0.1:8080/healthz"),
    }
    svc["metrics"] = {
        # Prometheus endpoint (no auth): no published port, scrape it from the compose network
        **_app_service(["campaignflow", "metrics", "serve", "--port", "9808", "--address", "0.0.0.0"]),
        "expose": ["9808"],
        "healthcheck": _http_check("http://127.0.0.1:9808/metrics"),
    }
    return svc


def _http_check(url: str) -> dict[str, Any]:
    return {
        "test": ["CMD", "python", "-c", f"import urllib.request as u; u.urlopen('{url}', timeout=5)"],
        "interval": "30s",
        "timeout": "10s",
        "retries": 3,
    }


def render(registry: Registry) -> str:
    doc = {
        "name": "campaignflow",
        "services": services(registry),
        "volumes": {"redis-data": {}, "postgres-data": {}, "beat-data": {}},
    }
    return HEADER + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=1000)
