"""Output helpers shared by the commands: JSON when asked, Rich tables otherwise, one-line errors,
and reading the files a command is given.

An error is one line naming the problem and the fix: ``error: ...`` on stderr, or, when the command
was given ``--json``, ``{"error": {"code", "message"}}`` on stdout. The exit code is
:data:`USAGE_EXIT` (2) for a usage error (a bad option or argument, a file that is not there) and
:data:`FAILURE_EXIT` (1) for any other failure.

On a terminal, tables and statuses are coloured and fit the window. Anywhere else (a pipe, a file,
the tests' captured output) the same tables come out as plain text, no colour codes, no trailing
blanks, and as wide as their content: nothing is wrapped or cut, so ids and timestamps stay whole
for ``grep`` and ``awk``. ``NO_COLOR`` and ``FORCE_COLOR`` work as Rich documents them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

import typer

from orchestration.settings import parse_duration as duration_of
from orchestration.timefmt import iso_utc

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Column
    from rich.text import Text

JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON (errors too).")

#: Exit code of a usage error: a bad option or argument, a file that is not there.
USAGE_EXIT = 2
#: Exit code of any other failure.
FAILURE_EXIT = 1

#: The arguments of the command line being run (set by the ``campaignflow`` group's ``main``).
INVOCATION: ContextVar[tuple[str, ...]] = ContextVar("campaignflow_invocation", default=())

#: Width of the output when it is not a terminal: wide enough that no row is ever wrapped.
PLAIN_WIDTH = 100_000

#: Colours of the words that carry a state, wherever a table or a summary shows one.
STATUS_STYLES = {
    "succeeded": "green",
    "ok": "green",
    "enabled": "green",
    "replayed": "green",
    "running": "cyan",
    "queued": "yellow",
    "waiting": "yellow",
    "pending": "yellow",
    "paused": "yellow",
    "warn": "yellow",
    "failed": "bold red",
    "fail": "bold red",
    "rejected": "red",
    "cancelled": "magenta",
    "skipped": "dim",
}


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def print_json(data: Any) -> None:
    """``data`` as indented JSON; datetimes in the one timestamp format (``...T09:30:00.123456Z``)."""
    typer.echo(json.dumps(data, indent=2, default=_json_default))


def console(file: IO[str] | None = None) -> Console:
    """A Console on ``file`` (stdout by default): colours and the window's width on a terminal; plain
    text and :data:`PLAIN_WIDTH` anywhere else."""
    from rich.console import Console

    file = file or sys.stdout
    terminal = file.isatty()
    return Console(
        file=file,
        width=None if terminal else PLAIN_WIDTH,
        markup=False,
        emoji=False,
        highlight=False,
    )


def render(*renderables: RenderableType, file: IO[str] | None = None) -> str:
    """Renderables as text for ``file`` (styled on a terminal), each line without trailing blanks."""
    out = console(file)
    with out.capture() as captured:
        for renderable in renderables:
            out.print(renderable)
    return "\n".join(line.rstrip() for line in captured.get().rstrip("\n").splitlines())


def echo(*renderables: RenderableType) -> None:
    """Print Rich renderables (tables, styled text) on stdout."""
    typer.echo(render(*renderables))


def cell(value: Any) -> Text:
    """A table cell: None is empty; text is taken literally (no Rich markup in data)."""
    from rich.text import Text

    if isinstance(value, Text):
        return value
    if isinstance(value, datetime):
        return Text(iso_utc(value))
    return Text("" if value is None else str(value))


def status_text(value: str | None) -> Text:
    """A state word, coloured on a terminal (``succeeded`` green, ``failed`` red, ...)."""
    from rich.text import Text

    text = "" if value is None else str(value)
    return Text(text, style=STATUS_STYLES.get(text.lower(), ""))


def id_column(header: str) -> Column:
    """The column that names a row (a run id): kept whole on a narrow terminal, where the other
    columns fold first."""
    from rich.table import Column

    return Column(header, no_wrap=True, overflow="fold")


def number_column(header: str) -> Column:
    from rich.table import Column

    return Column(header, justify="right", overflow="fold")


def table(headers: Sequence[str | Column], rows: Sequence[Sequence[Any]]) -> RenderableType:
    """A table: a bold header over a rule, columns apart by three blanks, no borders."""
    from rich import box
    from rich.table import Column, Table

    columns = [h if isinstance(h, Column) else Column(h, overflow="fold") for h in headers]
    grid = Table(
        *columns, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold", expand=False
    )
    for row in rows:
        grid.add_row(*(cell(c) for c in row))
    return grid


def print_table(headers: Sequence[str | Column], rows: Sequence[Sequence[Any]]) -> None:
    echo(table(headers, rows))


def error(message: str) -> None:
    """``error: message`` on stderr, never wrapped (``error:`` in red on a terminal)."""
    from rich.text import Text

    line = Text.assemble(("error:", "bold red"), " ", message)
    out = console(sys.stderr)
    out.print(line, soft_wrap=True)


@dataclass(frozen=True)
class CliError:
    """A failure as the command line reports it: a code for machines (``usage``, ``not_found``,
    ``invalid_input``, ``store_unavailable``, ``broker_unavailable``...), one line for people."""

    code: str
    message: str
    exit_code: int = FAILURE_EXIT


def wants_json() -> bool:
    """True when the command line being run was given ``--json``."""
    return "--json" in INVOCATION.get()


def report(problem: CliError, as_json: bool | None = None) -> None:
    """Print ``problem``: JSON on stdout with ``--json``, else one ``error:`` line on stderr."""
    if wants_json() if as_json is None else as_json:
        typer.echo(json.dumps({"error": {"code": problem.code, "message": problem.message}}))
    else:
        error(problem.message)


def fail(message: str, code: int = FAILURE_EXIT, kind: str | None = None) -> NoReturn:
    """Report ``message`` (see :func:`report`) and exit with ``code``."""
    report(CliError(kind or ("usage" if code == USAGE_EXIT else "failed"), message, code))
    raise typer.Exit(code)


def read_bytes(source: str | Path, label: str | None = None) -> bytes:
    """The bytes of a file (``-`` is stdin); a missing file, a directory or an unreadable one is a
    usage error naming it."""
    label = label or str(source)
    if str(source) == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except FileNotFoundError:
        fail(f"{label}: no such file; check the path", USAGE_EXIT)
    except IsADirectoryError:
        fail(f"{label}: is a directory; give a file", USAGE_EXIT)
    except PermissionError:
        fail(f"{label}: permission denied; check the file's permissions", USAGE_EXIT)
    except OSError as exc:
        fail(f"{label}: cannot be read ({exc.strerror or exc}); check the path", USAGE_EXIT)


def decode_text(data: bytes, label: str) -> str:
    """``data`` as UTF-8 text; NUL bytes and other encodings are refused with the offset."""
    nul = data.find(b"\x00")
    if nul >= 0:
        fail(
            f"{label}: holds a NUL byte at offset {nul}; a JSON or YAML file is text without NUL bytes "
            "(inside a JSON string, write \\u0000)",
            kind="invalid_input",
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        fail(
            f"{label}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); save it as UTF-8",
            kind="invalid_input",
        )


def parse_json(text: str, label: str) -> Any:
    """``text`` as JSON; invalid or too deeply nested JSON is refused with where and why."""
    try:
        return json.loads(text)
    except RecursionError:
        fail(f"{label}: JSON nested too deeply to read; flatten it", kind="invalid_input")
    except json.JSONDecodeError as exc:
        fail(
            f"{label}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); correct it",
            kind="invalid_input",
        )


def read_json(source: str | Path, label: str | None = None) -> Any:
    """A JSON file (``-`` is stdin), every problem reported as one line naming the file."""
    label = label or ("stdin" if str(source) == "-" else str(source))
    return parse_json(decode_text(read_bytes(source, label), label), label)


def parse_duration(text: str, flag: str) -> timedelta:
    """``30d``, ``12h``, ``15m``, ``90s``, ``2w`` as a timedelta; anything else is a usage error."""
    try:
        return duration_of(text)
    except ValueError as exc:
        fail(f"{flag}: {exc}", USAGE_EXIT)
