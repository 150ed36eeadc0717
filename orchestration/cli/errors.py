"""Every failure of ``campaignflow`` ends as one line naming the problem and the fix, never a
traceback: :class:`CampaignflowGroup` runs the command and turns what it raises into a
:class:`~orchestration.cli.common.CliError` (:func:`describe`), printed by
:func:`~orchestration.cli.common.report` (JSON with ``--json``). A usage error exits 2, any other
failure 1. An error nobody expected (a bug) says so; ``campaignflow --traceback ...`` shows its
traceback for the report.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from orchestration.cli.common import FAILURE_EXIT, INVOCATION, USAGE_EXIT, CliError, report
from orchestration.errors import CampaignflowError, ConfigurationError, FieldError


def _click_class(name: str) -> type[Exception]:
    """A class of the click that Typer uses (its own copy in recent versions), found from a public
    Typer exception so that both layouts work."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


USAGE_ERROR = _click_class("UsageError")
CLICK_ERROR = _click_class("ClickException")


def one_line(text: str) -> str:
    """A multi-line message (``invalid event:\\n  a\\n  b``) as one line (``invalid event: a; b``)."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {'; '.join(lines[1:])}"
    return "; ".join(lines)


def _usage(exc: Any) -> CliError:
    ctx = getattr(exc, "ctx", None)
    hint = f"; see '{ctx.command_path} --help'" if ctx is not None else ""
    # Typer's choice check words its message as a validation error ("Value error, 'x' is not one of")
    message = one_line(exc.format_message()).replace("Value error, ", "").rstrip(".")
    return CliError("usage", message + hint, USAGE_EXIT)


def _campaignflow(exc: CampaignflowError) -> CliError:
    from orchestration.control.rejected import EventRejectedError

    if isinstance(exc, EventRejectedError):
        code = "rejected"
    elif isinstance(exc, FieldError):
        code = "invalid_input"
    elif isinstance(exc, LookupError):
        code = "not_found"
    elif isinstance(exc, ConfigurationError):
        code = "configuration"
    else:
        code = "failed"
    return CliError(code, one_line(str(exc)))


def _store(exc: Exception) -> CliError | None:
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, ProgrammingError

    cause = one_line(str(getattr(exc, "orig", None) or exc))
    if isinstance(exc, OperationalError | InterfaceError) and "no such table" not in cause:
        return CliError(
            "store_unavailable",
            f"run store not reachable ({cause}); check CAMPAIGNFLOW_DATABASE_URL and that the database runs",
        )
    if isinstance(exc, ProgrammingError | OperationalError):  # SQLite: "no such table" is operational
        return CliError(
            "store_not_ready",
            f"run store not usable ({cause}); check CAMPAIGNFLOW_DATABASE_URL and run "
            "`campaignflow db upgrade`",
        )
    if isinstance(exc, DBAPIError):
        return CliError("store_error", f"the run store refused the request ({cause})")
    return None


def _broker(exc: Exception) -> CliError | None:
    from kombu.exceptions import OperationalError as KombuOperationalError
    from kombu.utils.url import maybe_sanitize_url
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from orchestration.settings import get_settings

    if not isinstance(
        exc, KombuOperationalError | RedisConnectionError | RedisTimeoutError | ConnectionError
    ):
        return None
    url = maybe_sanitize_url(get_settings().effective_broker_url())
    return CliError(
        "broker_unavailable",
        f"broker not reachable at {url} ({one_line(str(exc))}); check CAMPAIGNFLOW_BROKER_URL and that "
        "the broker runs",
    )


def _settings(exc: Exception) -> CliError | None:
    """A ``CAMPAIGNFLOW_*`` variable the settings refused, named with what is wrong with it."""
    from pydantic import ValidationError

    from orchestration.settings import Settings

    if not isinstance(exc, ValidationError) or exc.title != Settings.__name__:
        return None
    prefix = Settings.model_config.get("env_prefix", "")
    problems = [
        f"{prefix}{'.'.join(map(str, e['loc'])).upper()}: {e['msg'].removeprefix('Value error, ')}"
        for e in exc.errors()
    ]
    return CliError("configuration", "; ".join(problems) + "; fix the environment variable")


def describe(exc: BaseException) -> CliError:
    """What to tell the user about ``exc``: a code, one line with the fix, the exit code."""
    if isinstance(exc, USAGE_ERROR):
        return _usage(exc)
    if isinstance(exc, typer.Abort):
        return CliError("aborted", "aborted: the input ended or the command was interrupted", FAILURE_EXIT)
    if isinstance(exc, CLICK_ERROR):
        return CliError("failed", one_line(exc.format_message()), exc.exit_code)  # type: ignore[attr-defined]
    if isinstance(exc, CampaignflowError):
        return _campaignflow(exc)
    if isinstance(exc, Exception):
        found = _settings(exc) or _store(exc) or _broker(exc)
        if found is not None:
            return found
    if isinstance(exc, OSError) and exc.filename is not None:
        return CliError("file", f"{exc.filename}: {exc.strerror or exc}; check the path")
    if isinstance(exc, UnicodeDecodeError):
        return CliError("invalid_input", f"input is not UTF-8 text ({exc}); save it as UTF-8")
    if isinstance(exc, RecursionError):
        return CliError("invalid_input", "input nested too deeply to process; flatten it")
    return CliError(
        "internal",
        f"unexpected {type(exc).__name__}: {one_line(str(exc))}; this is a bug: run the command again "
        "with `campaignflow --traceback ...` and report what it prints",
    )


class CampaignflowGroup(TyperGroup):
    """The root command: whatever the command raises is reported by :func:`describe`, one line."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = tuple(sys.argv[1:] if args is None else args)
        token = INVOCATION.set(argv)
        try:
            code = self._run(argv, prog_name, complete_var, **extra)
        finally:
            INVOCATION.reset(token)
        if standalone_mode:
            sys.exit(code)
        return code

    def _run(
        self, argv: tuple[str, ...], prog_name: str | None, complete_var: str | None, **extra: Any
    ) -> int:
        try:
            rv = super().main(
                args=list(argv),
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
        except Exception as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # `campaignflow runs`: show the help
                exc.show()  # type: ignore[attr-defined]
                return int(exc.exit_code)  # type: ignore[attr-defined]
            if "--traceback" in argv and not isinstance(exc, CLICK_ERROR):
                raise
            problem = describe(exc)
            report(problem)
            return problem.exit_code
        return rv if isinstance(rv, int) else 0
