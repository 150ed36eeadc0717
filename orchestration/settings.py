"""Settings from the environment (prefix ``CAMPAIGNFLOW_``).

With no broker and no database configured, the embedded default is used: an in-process broker and
a SQLite file for the run store, so ``campaignflow demo`` runs on a bare machine.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EMBEDDED_BROKER_URL = "memory://localhost/"
EMBEDDED_RESULT_BACKEND = "cache+memory://"

#: The units of a duration (``30d``): seconds, minutes, hours, days, weeks.
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``12h``, ``30d``, ``2w`` as a timedelta (the retention settings and the
    ``--older-than`` options); anything else raises ``ValueError`` saying what to write."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration; write a number and a unit: 90s, 15m, 12h, 30d, 2w")
    return timedelta(seconds=float(match.group(1)) * DURATION_UNITS[match.group(2)])


class Settings(BaseSettings):
    """Every knob campaignflow reads. Field descriptions are the configuration reference."""

    model_config = SettingsConfigDict(env_prefix="CAMPAIGNFLOW_", extra="ignore")

    broker_url: str | None = Field(None, description="Celery broker URL, e.g. redis://host:6379/0.")
    result_backend: str | None = Field(
        None, description="Celery result backend; Redis in production (chords join natively)."
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the run store; postgresql:// is read as psycopg 3."
    )
    smtp_url: str | None = Field(
        None,
        description="smtp://[user:password@]host:port[?starttls=1&from=addr] (smtps:// for TLS from the "
        "start); unset = messages go to the outbox (recorded in the delivery ledger, not sent).",
    )
    flower_basic_auth: str | None = Field(None, description="user:password for Flower.")
    flower_url: str | None = Field(
        None,
        description="Flower's base URL as operators' browsers reach it (https://flower.example.com); "
        "the console's run pages link each step to its task page there. Unset = no links.",
    )
    llm_base_url: str | None = Field(None, description="OpenAI-compatible endpoint; unset = template.")
    llm_api_key: str | None = Field(None, description="Bearer token for the LLM endpoint.")
    llm_model: str = Field("gpt-4o-mini", description="Model name sent to the LLM endpoint.")
    data_dir: Path = Field(Path(".campaignflow"), description="Where the embedded SQLite store lives.")
    visibility_timeout: int = Field(
        7200, description="Seconds before an unacked Redis message is redelivered; > longest step."
    )
    unacked_restore_interval: float | None = Field(
        None, description="Redis transport: seconds between sweeps for expired unacked messages."
    )
    redis_key_prefix: str | None = Field(None, description="Prefix for every broker/backend key.")
    plugins: str = Field(
        "", description="Comma-separated modules imported at start-up that register more agents or flows."
    )
    flows_dir: Path | None = Field(None, description="A directory of flow files (YAML/JSON) to load.")
    log_json: bool = Field(False, description="Write worker logs as JSON lines.")
    task_events: bool = Field(
        True,
        description="Celery task events: workers send them (worker_send_task_events) and publishers "
        "send task-sent (task_send_sent_event). Flower's task views and events-based monitoring need "
        "them; off saves their per-task cost.",
    )
    sweep_interval: float = Field(60.0, description="Seconds between sweeper runs (beat).")
    stall_seconds: float = Field(
        900.0,
        gt=0,
        description="A live run with no step progress this long is re-driven (> longest step + backoff).",
    )
    max_redrives: int = Field(3, ge=0, description="Re-drives of a stalled run before the sweeper fails it.")
    relay_interval: float = Field(
        5.0,
        gt=0,
        description="Seconds between outbox relay passes (beat): a run the ingesting process could not "
        "publish (the broker was down) is published then.",
    )
    timer_interval: float = Field(
        1.0,
        gt=0,
        description="Seconds between timer poller passes (beat): a sleeping run wakes, and a wait times "
        "out, at most this long after it is due.",
    )
    store_outage_seconds: float = Field(
        300.0,
        gt=0,
        description="How long a task waits out a run store outage (retrying with backoff) before its "
        "run fails with StoreUnavailable; measured from the first failure of the task's message.",
    )
    campaign_tick_interval: float = Field(
        60.0, gt=0, description="Seconds between campaign ticks (beat): due campaign slots start then."
    )
    agent_modules: str = Field(
        "tasks.catalog",
        description="Comma-separated modules whose register(registry) declares the built-in agents.",
    )
    max_event_bytes: int = Field(
        1_048_576,
        gt=0,
        description="Largest event accepted, in bytes of JSON; a larger one is stored as a rejected event.",
    )
    routes_file: Path | None = Field(
        None, description="A YAML/JSON file of routing rules (event_type, campaign?, orchestrator|flow)."
    )
    retention_runs: timedelta | None = Field(
        None,
        description="Finished runs (with their step records) are deleted this long after they ended "
        "(30d, 12h); unset = kept forever. Queued and running runs are never deleted.",
    )
    retention_rejected: timedelta | None = Field(
        None, description="Rejected events are deleted this long after they came (30d); unset = kept forever."
    )
    retention_dead_letters: timedelta | None = Field(
        None,
        description="Dead letters are deleted this long after they were last seen; unset = kept forever.",
    )
    retention_interval: float = Field(
        300.0, gt=0, description="Seconds between retention runs (beat): purges, and counters folded."
    )

    @field_validator("retention_runs", "retention_rejected", "retention_dead_letters", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        """A duration as ``30d`` (see :func:`parse_duration`), more than zero; empty = unset."""
        if isinstance(value, str):
            if not value.strip():
                return None
            value = parse_duration(value)
        if isinstance(value, timedelta) and value <= timedelta(0):
            raise ValueError("must be more than zero; leave it unset to keep everything")
        return value

    limits: str = Field(
        "",
        description='Cluster-wide limits per agent, as JSON: {"send_email": {"global_rate_limit": "20/s", '
        '"global_concurrency": 3, "limit_key": "$input.email|domain"}}; wins over the agent and the flow.',
    )
    limit_lease_seconds: float = Field(
        30.0,
        gt=0,
        description="How long a global concurrency permit lives unless renewed: a worker that died "
        "returns its permits within this time; a live long step renews them.",
    )

    api_tokens: str | None = Field(
        None,
        description="Bearer tokens of the HTTP API, name:token:role comma-separated (role read or "
        "operate); unset = `campaignflow api` refuses to start unless --no-auth.",
    )
    api_max_body_bytes: int = Field(
        1_048_576, gt=0, description="Largest HTTP API request body, in bytes; a larger one is answered 413."
    )
    webhook_secrets: str | None = Field(
        None, description="HMAC-SHA256 secrets of the webhook sources, source:secret comma-separated."
    )
    webhook_tolerance_seconds: int = Field(
        300, gt=0, description="How far a signed webhook's timestamp may be from now, in seconds."
    )

    frequency_cap_day: int | None = Field(
        None,
        ge=1,
        description="Most marketing messages one recipient gets per calendar day (in their "
        "time zone), all campaigns together; unset = no cap.",
    )
    frequency_cap_week: int | None = Field(
        None,
        ge=1,
        description="Most marketing messages one recipient gets per calendar week (Monday to "
        "Sunday, in their time zone), all campaigns together; unset = no cap.",
    )
    frequency_cap_campaign_day: int | None = Field(
        None,
        ge=1,
        description="Most marketing messages one recipient gets per calendar day from one "
        "campaign; unset = no cap.",
    )
    frequency_cap_campaign_week: int | None = Field(
        None,
        ge=1,
        description="Most marketing messages one recipient gets per calendar week from one "
        "campaign; unset = no cap.",
    )
    unsubscribe_url: str | None = Field(
        None,
        description="https URL of the one-click unsubscribe endpoint (the API's /v1/unsubscribe); "
        "marketing messages carry it in List-Unsubscribe with a signed token.",
    )
    unsubscribe_mailto: str | None = Field(
        None, description="Address for unsubscribe requests by mail, in List-Unsubscribe beside the URL."
    )
    unsubscribe_secret: str | None = Field(
        None,
        description="Key that signs the unsubscribe tokens (HMAC-SHA256); required to send "
        "marketing messages over SMTP.",
    )
    domain_backoff_seconds: float = Field(
        30.0,
        gt=0,
        description="First pause of a receiving domain that deferred a message (SMTP 4xx); "
        "doubles with each further deferral.",
    )
    domain_backoff_max_seconds: float = Field(
        900.0, gt=0, description="Longest pause of a receiving domain that keeps deferring."
    )

    @field_validator("unsubscribe_url")
    @classmethod
    def _unsubscribe_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must be an https:// URL (RFC 8058 one-click needs https)")
        return value or None

    @property
    def embedded(self) -> bool:
        """True when no broker is configured: in-process broker and worker threads."""
        return self.broker_url is None

    def effective_broker_url(self) -> str:
        return self.broker_url or EMBEDDED_BROKER_URL

    def effective_result_backend(self) -> str:
        if self.result_backend:
            return self.result_backend
        if self.broker_url and self.broker_url.startswith(("redis://", "rediss://")):
            return self.broker_url
        return EMBEDDED_RESULT_BACKEND

    def effective_database_url(self) -> str:
        url = self.database_url or f"sqlite:///{self.data_dir / 'campaignflow.db'}"
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url

    def embedded_variant(self, data_dir: Path) -> Settings:
        """These settings with every server URL unset: the embedded default, its store in ``data_dir``."""
        return self.model_copy(
            update={"broker_url": None, "result_backend": None, "database_url": None, "data_dir": data_dir}
        )

    def server_settings(self) -> list[str]:
        """The names of the server settings that are set (the embedded default ignores them)."""
        return [f"CAMPAIGNFLOW_{name.upper()}" for name in SERVER_FIELDS if getattr(self, name)]

    def module_names(self) -> list[str]:
        """The agent modules, then the plugins, in the order they are loaded."""
        return [m.strip() for m in f"{self.agent_modules},{self.plugins}".split(",") if m.strip()]


#: Settings that point the process at servers; the embedded default runs without them.
SERVER_FIELDS = ("broker_url", "result_backend", "database_url")

_configured: Settings | None = None


def configure(settings: Settings | None) -> None:
    """Make ``settings`` this process's settings (``None``: read the environment again)."""
    global _configured
    _configured = settings
    _from_environment.cache_clear()


def get_settings() -> Settings:
    """This process's settings: the configured ones, else those read once from the environment."""
    return _configured if _configured is not None else _from_environment()


@lru_cache(maxsize=1)
def _from_environment() -> Settings:
    return Settings()


def export_environment(values: Mapping[str, str], unset: Iterable[str] = ()) -> None:
    """Write this process's environment, for a third-party program started in it that reads its
    configuration only from there (Flower's basic auth). The one place campaignflow writes it."""
    for name in unset:
        os.environ.pop(name, None)
    os.environ.update(values)
