"""Structured logs: every line written while a step runs carries ``run_id``, ``step_id`` and ``agent``.

The step context lives in a :class:`~contextvars.ContextVar` set around each task (see
``orchestration.engine.signals``); :class:`StepContextFilter` copies it onto each record, and the
formatters print it, as JSON lines (``CAMPAIGNFLOW_LOG_JSON=true``) or readable text (the default).
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar, Token
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from celery.utils.log import ColorFormatter

#: Record attributes the filter sets (``None`` outside a step).
FIELDS = ("run_id", "step_id", "agent", "task_id")
READABLE_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"


@dataclass(frozen=True)
class StepFields:
    run_id: str | None
    step_id: str | None
    agent: str | None
    task_id: str | None


_current: ContextVar[StepFields | None] = ContextVar("campaignflow_step", default=None)


def bind(fields: StepFields) -> Token[StepFields | None]:
    """Make ``fields`` the step context of this thread/task until :func:`unbind`."""
    return _current.set(fields)


def unbind(token: Token[StepFields | None]) -> None:
    _current.reset(token)


def current() -> StepFields | None:
    return _current.get()


class StepContextFilter(logging.Filter):
    """Adds ``run_id``, ``step_id``, ``agent``, ``task_id`` to every record (``None`` outside a step)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _current.get()
        values = asdict(fields) if fields is not None else {}
        for name in FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, values.get(name))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, the step fields, and the exception."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.processName,
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc_info"] = record.exc_text
        return json.dumps(line, default=str, ensure_ascii=False)


class ReadableFormatter(logging.Formatter):
    """Plain text; lines written inside a step end with ``run_id=… step_id=… agent=…``."""

    def __init__(self, fmt: str | None = None) -> None:
        super().__init__(fmt or READABLE_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = " ".join(
            f"{name}={getattr(record, name)}"
            for name in ("run_id", "step_id", "agent")
            if getattr(record, name, None) is not None
        )
        if not context:
            return text
        first, newline, rest = text.partition("\n")
        return f"{first} [{context}]{newline}{rest}"


def formatter(json_lines: bool, fmt: str | None = None) -> logging.Formatter:
    return JsonFormatter() if json_lines else ReadableFormatter(fmt)


def install(logger: logging.Logger, *, json_lines: bool, fmt: str | None = None) -> int:
    """Give the handlers Celery set up on ``logger`` the step filter and our formatter.

    Handlers someone else installed (anything not formatted by Celery's own formatter) are left
    alone, so a process that configured its logging itself keeps it. Returns the handlers changed.
    """
    changed = 0
    for handler in logger.handlers:
        if not isinstance(handler.formatter, ColorFormatter | JsonFormatter | ReadableFormatter):
            continue
        if not any(isinstance(f, StepContextFilter) for f in handler.filters):
            handler.addFilter(StepContextFilter())
        handler.setFormatter(formatter(json_lines, fmt))
        changed += 1
    return changed


def capture_warnings_as_json() -> None:
    """Route Python warnings to a JSON handler of their own on stderr (from the first warning on,
    before Celery sets up its logging), so a JSON log stream has no raw text lines in it."""
    logging.captureWarnings(True)
    warnings_log = logging.getLogger("py.warnings")
    if any(isinstance(h.formatter, JsonFormatter) for h in warnings_log.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(StepContextFilter())
    handler.setFormatter(JsonFormatter())
    warnings_log.addHandler(handler)
    warnings_log.propagate = False
