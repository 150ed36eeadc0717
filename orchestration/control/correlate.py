"""Events that resume waiting runs: a routing rule with ``resume`` (``{signal: replied, key:
payload.email}``) sends its events, as the signal ``signal``, to every run whose open wait for that
signal has the event's ``key`` value as its correlation (the wait node's ``correlate``, e.g.
``$payload.email``). The event's payload is the signal's data and ``event:<event id>`` its signal
id, so the same event delivered twice resumes each run once."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from orchestration.control.signals import signal_run
from orchestration.errors import CampaignflowError
from orchestration.flows.refs import lookup
from orchestration.flows.strict import StrictModel
from orchestration.store import sql_engine, waits

#: Most runs one event resumes (the oldest waits first).
MAX_RESUMED = 1000


class Resume(StrictModel):
    """What a routing rule's events resume: the waits for ``signal`` whose correlation value is the
    event's ``key`` (a path into the event: ``payload.email``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    signal: str = Field(pattern=r"^[a-z][a-z0-9_.\-]*$", max_length=120)
    key: str = Field(pattern=r"^(payload|id|type|campaign)(\.[A-Za-z0-9_\-]+)*$", max_length=200)

    def describe(self) -> str:
        return f"runs waiting for {self.signal} (by {self.key})"


def correlation_of(event: dict[str, Any], resume: Resume) -> str | None:
    value = lookup(event, resume.key)
    return None if value is None or isinstance(value, dict | list) else str(value)


def resume_waiting(event: dict[str, Any], resumes: list[Resume]) -> tuple[list[str], bool]:
    """Send the event to the runs its rules' waits correlate with: the runs it resumed, and True
    when it is the same event again (the runs it resumed the first time)."""
    signal_id = f"event:{event['id']}"
    with sql_engine().connect() as conn:
        before = waits.runs_signalled(conn, signal_id, MAX_RESUMED)
    if before:
        return before, True
    resumed: list[str] = []
    for resume in resumes:
        value = correlation_of(event, resume)
        if value is None:
            continue
        with sql_engine().connect() as conn:
            run_ids = waits.correlated_runs(conn, resume.signal, value, MAX_RESUMED)
        for run_id in run_ids:
            try:
                signal_run(run_id, resume.signal, event.get("payload"), signal_id)
            except CampaignflowError:  # the run ended or moved on meanwhile: nothing to resume
                continue
            resumed.append(run_id)
    return resumed, False
