"""A run's step timeline: a row per step, a bar per try, and the waits between tries (the retry
backoff) drawn as waits, as server-side SVG.

Each try's start comes from the record's tries (when the store kept them); its end is when its
error was recorded (``attempt_errors[].at``), or the record's end for the last try. Without the
tries the record is one bar from its first start to its end, marked with its number of tries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup, escape

from orchestration.api.console.render import duration
from orchestration.envelope import Envelope, StepRecord
from orchestration.timefmt import as_utc

LABEL_W, BARS_W, ROW_H, AXIS_H = 190, 760, 26, 22


@dataclass(frozen=True)
class Segment:
    """One piece of a row: a try (``kind`` ``try``, its ``outcome``) or a ``wait`` before a try."""

    kind: str
    start: datetime
    end: datetime
    outcome: str
    attempt: int | None = None
    note: str = ""


@dataclass(frozen=True)
class Row:
    step_id: str
    status: str
    segments: list[Segment]


def _at(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, str) and value:
        try:
            return as_utc(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def _starts(tries: list[dict[str, Any]] | None) -> dict[int, datetime]:
    starts: dict[int, datetime] = {}
    for entry in tries or []:
        at, attempt = _at(entry.get("started_at")), entry.get("attempt")
        if at is not None and isinstance(attempt, int):
            starts[attempt] = at  # a redelivered try counts from its last start
    return starts


def row_of(record: StepRecord, tries: list[dict[str, Any]] | None, now: datetime) -> Row | None:
    """The record's row; None for a record that never started (skipped, pending)."""
    if record.started_at is None:
        return None
    end = record.finished_at or now
    failures = {e.attempt: e for e in record.attempt_errors if e.attempt is not None and e.at is not None}
    # a start the store took back (counted twice by one message, or not a try) is past ``attempts``
    starts = {n: at for n, at in _starts(tries).items() if n <= record.attempts}
    if not starts:  # no per-try starts kept: one bar
        note = f"{record.attempts} tries" if record.attempts > 1 else ""
        return Row(
            record.step_id, record.status, [Segment("try", record.started_at, end, record.status, None, note)]
        )
    segments: list[Segment] = []
    previous_end: datetime | None = None
    for attempt in sorted(starts):
        start = starts[attempt]
        if previous_end is not None and start > previous_end:
            segments.append(
                Segment("wait", previous_end, start, "wait", attempt, "backoff before the next try")
            )
        failed = failures.get(attempt)
        last = attempt == max(starts)
        if failed is not None and failed.at is not None and not (last and record.status == "running"):
            stop, outcome, note = failed.at, "failed", f"{failed.type}: {failed.message}"
        elif last:
            stop, outcome, note = end, record.status, ""
        else:  # a try whose end nobody recorded (a lost one)
            stop, outcome, note = starts[min(a for a in starts if a > attempt)], "lost", "no outcome recorded"
        segments.append(Segment("try", start, max(start, stop), outcome, attempt, note))
        previous_end = max(start, stop)
    return Row(record.step_id, record.status, segments)


def rows_of(
    envelope: Envelope, tries: dict[str, list[dict[str, Any]]], now: datetime | None = None
) -> list[Row]:
    now = now or datetime.now(UTC)
    rows = (row_of(r, tries.get(r.step_id), now) for r in envelope.records)
    return [r for r in rows if r is not None]


def svg(rows: list[Row], origin: datetime | None = None) -> Markup:
    """The rows as SVG: time runs left to right from ``origin`` (default: the first start)."""
    if not rows:
        return Markup('<p class="muted">No step has started yet.</p>')
    t0 = origin or min(s.start for r in rows for s in r.segments)
    t1 = max(s.end for r in rows for s in r.segments)
    span = max((t1 - t0).total_seconds(), 0.001)

    def x(at: datetime) -> float:
        return LABEL_W + BARS_W * (at - t0).total_seconds() / span

    height = AXIS_H + ROW_H * len(rows) + 6
    width = LABEL_W + BARS_W + 40
    parts = [
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="step timeline">',
        '<defs><pattern id="wait-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" class="wait-bg"/>'
        '<line x1="0" y1="0" x2="0" y2="6" class="wait-line"/></pattern></defs>',
    ]
    for i in range(5):
        tx = LABEL_W + BARS_W * i / 4
        parts.append(f'<line class="tick" x1="{tx}" y1="{AXIS_H - 4}" x2="{tx}" y2="{height}"/>')
        parts.append(f'<text class="axis" x="{tx}" y="{AXIS_H - 8}">+{escape(duration(span * i / 4))}</text>')
    for n, row in enumerate(rows):
        y = AXIS_H + n * ROW_H
        parts.append(
            f'<g class="row" data-step="{escape(row.step_id)}"><text class="step-label" x="4" y="{y + 17}">'
            f"{escape(row.step_id if len(row.step_id) <= 26 else row.step_id[:25] + '…')}</text>"
        )
        for seg in row.segments:
            left = x(seg.start)
            bar_w = max(x(seg.end) - left, 2.0)
            seconds = (seg.end - seg.start).total_seconds()
            what = "wait" if seg.kind == "wait" else f"try {seg.attempt}" if seg.attempt else "step"
            title = f"{row.step_id} {what}: {seg.outcome}, {duration(seconds)}"
            if seg.note:
                title += f" ({seg.note})"
            parts.append(
                f'<rect class="seg {seg.kind} outcome-{escape(seg.outcome)}" x="{left:.1f}" y="{y + 5}" '
                f'width="{bar_w:.1f}" height="{ROW_H - 10}" rx="2" data-kind="{seg.kind}" '
                f'data-attempt="{seg.attempt or ""}"><title>{escape(title)}</title></rect>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return Markup("".join(parts))
