"""How ``campaignflow flower`` starts Flower 2.2 for our app: basic auth from the settings (passed
through Flower's environment, never on the command line), events on, a bounded task history, offline
workers purged, read-only unless control is asked for.

Without ``CAMPAIGNFLOW_FLOWER_BASIC_AUTH`` Flower does not start, unless ``--no-auth`` says so on
purpose; then the dashboards are open but read-only, and Flower's JSON API stays closed (401): we
remove ``FLOWER_UNAUTHENTICATED_API`` from Flower's environment, so an unauthenticated Flower never
serves task arguments or results to scripts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestration.errors import ConfigurationError

AUTH_SETTING = "CAMPAIGNFLOW_FLOWER_BASIC_AUTH"
DEFAULT_PORT = 5555
DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_MAX_TASKS = 10_000
DEFAULT_PURGE_OFFLINE = 300


def parse_basic_auth(value: str) -> list[str]:
    """``user:password[,user2:password2]`` -> the entries; the error never repeats a password."""
    entries = [entry.strip() for entry in value.split(",")]
    for number, entry in enumerate(entries, 1):
        user, sep, password = entry.partition(":")
        if not sep or not user or not password:
            raise ConfigurationError(
                f"{AUTH_SETTING}: entry {number} is not user:password with both parts non-empty; "
                "set it like ops:a-long-secret (several users: comma-separated)"
            )
    return entries


@dataclass(frozen=True)
class FlowerPlan:
    """What to run: the ``celery`` sub-command argv, and environment changes for Flower."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    unset: tuple[str, ...] = ()
    authenticated: bool = True
    read_only: bool = True


def plan(
    basic_auth: str | None,
    *,
    port: int = DEFAULT_PORT,
    address: str = DEFAULT_ADDRESS,
    max_tasks: int = DEFAULT_MAX_TASKS,
    purge_offline_workers: int = DEFAULT_PURGE_OFFLINE,
    allow_control: bool = False,
    no_auth: bool = False,
) -> FlowerPlan:
    """Check the options against the auth setting and build the Flower command."""
    if no_auth and basic_auth:
        raise ConfigurationError(f"--no-auth: {AUTH_SETTING} is set too; unset it or drop --no-auth")
    if not no_auth and not basic_auth:
        raise ConfigurationError(
            f"{AUTH_SETTING} is not set; set it to user:password, or pass --no-auth to run Flower "
            "without authentication on purpose"
        )
    if no_auth and allow_control:
        raise ConfigurationError("--allow-control: refused without authentication; set " + AUTH_SETTING)
    if not 0 < port < 65536:
        raise ConfigurationError(f"--port: {port} is not a TCP port (1-65535)")
    if max_tasks < 1:
        raise ConfigurationError(f"--max-tasks: {max_tasks} must be at least 1")
    if purge_offline_workers < 1:
        raise ConfigurationError(f"--purge-offline-workers: {purge_offline_workers} must be at least 1 s")
    read_only = not allow_control
    argv = [
        "flower",
        f"--port={port}",
        f"--address={address}",
        "--enable_events=True",
        f"--max_tasks={max_tasks}",
        f"--purge_offline_workers={purge_offline_workers}",
        f"--read_only={read_only}",
    ]
    unset = ("FLOWER_BASIC_AUTH", "FLOWER_UNAUTHENTICATED_API", "FLOWER_AUTH")
    if no_auth:
        return FlowerPlan(argv, unset=unset, authenticated=False, read_only=True)
    assert basic_auth is not None
    entries = parse_basic_auth(basic_auth)
    return FlowerPlan(
        argv, env={"FLOWER_BASIC_AUTH": ",".join(entries)}, unset=unset[1:], read_only=read_only
    )
