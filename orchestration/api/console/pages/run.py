"""``GET /runs/{id}``: one run (its steps' timeline, the flow graph coloured by status, each step's
input, output, error and tries, links to Flower), and its actions: retry from the failed step with
an edited payload, cancel, and the signal a waiting run waits for (an approval: who and a comment),
each confirmed on a page of its own first."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from orchestration.api.console import graph, timeline
from orchestration.api.console.pages.runs import REFRESH_SECONDS
from orchestration.api.console.web import Actor, Form, Viewer, Visit, page, redirect, refusal
from orchestration.control import run_control, signals
from orchestration.envelope import Envelope
from orchestration.flows.model import Flow, MapNode, StepNode
from orchestration.names import LIVE_RUN_STATUSES, TERMINAL_RUN_STATUSES, RunStatus, agent_task
from orchestration.store import insights, sql_engine
from orchestration.store import repository as repo

router = APIRouter(tags=["console"], include_in_schema=False)
NOTICES = {
    "cancelled": "The run was cancelled.",
    "retried": "The run was retried from its failed step.",
    "signalled": "The signal was sent.",
}
#: How a group of map items reads as one status, worst first.
_ORDER = ("failed", "running", "pending", "succeeded", "skipped")


def merge_patch_between(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7396) that turns ``old`` into ``new``: removed keys are ``null``."""
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if key in old and before == value:
            continue
        if isinstance(before, Mapping) and isinstance(value, Mapping):
            patch[key] = merge_patch_between(before, value)
        else:
            patch[key] = value
    return patch


def map_statuses(flow: Flow, statuses: dict[str, str]) -> dict[str, str]:
    """A map's inner steps have a record per item (``each[2].enrich``); each inner step reads as
    the worst of its items, and ``n/m`` of them done."""
    out: dict[str, str] = {}
    for node in flow.walk():
        if not isinstance(node, MapNode):
            continue
        inner = (
            [node.do]
            if isinstance(node.do, StepNode)
            else [s for s in node.do.steps if isinstance(s, StepNode)]
        )
        for step in inner:
            suffix = "" if isinstance(node.do, StepNode) else re.escape(f".{step.id}")
            pattern = re.compile(rf"^{re.escape(node.id)}\[\d+\]{suffix}$")
            items = [s for sid, s in statuses.items() if pattern.match(sid)]
            if items:
                out[step.id] = min(items, key=lambda s: _ORDER.index(s) if s in _ORDER else 0)
    return out


def _flower_links(
    visit_settings: Any, envelope: Envelope, tries: dict[str, list[dict[str, Any]]]
) -> dict[str, str]:
    base = (visit_settings.flower_url or "").rstrip("/")
    if not base:
        return {}
    links: dict[str, str] = {}
    for record in envelope.records:
        task_ids = [t.get("task_id") for t in tries.get(record.step_id, []) if t.get("task_id")]
        if task_ids:
            links[record.step_id] = f"{base}/task/{task_ids[-1]}"
        elif record.attempts and record.agent and not record.agent.startswith("engine."):
            links[record.step_id] = f"{base}/tasks?name={agent_task(record.agent)}"
    return links


def _load(run_id: str) -> tuple[Envelope, Flow | None, dict[str, list[dict[str, Any]]]]:
    with sql_engine().connect() as conn:
        envelope = repo.get_envelope(conn, run_id)
        flow_def = insights.flow_def_of_run(conn, run_id)
        tries = insights.step_tries(conn, run_id)
    flow = Flow.model_validate(flow_def) if flow_def else None
    return envelope, flow, tries


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(
    run_id: str, visit: Viewer, notice: Annotated[str | None, Query(max_length=40)] = None
) -> HTMLResponse:
    envelope, flow, tries = _load(run_id)
    statuses = {r.step_id: str(r.status) for r in envelope.records}
    shown = {**statuses, **(map_statuses(flow, statuses) if flow else {})}
    live = envelope.status in LIVE_RUN_STATUSES
    drawing = (
        graph.flow_svg(
            flow,
            shown.get,
            str(envelope.status) if envelope.status in TERMINAL_RUN_STATUSES else None,
            lambda step_id: f"#step-{step_id}",
        )
        if flow
        else None
    )
    rows = timeline.rows_of(envelope, tries)
    return page(
        visit,
        "run.html",
        run=envelope,
        meta=envelope.metadata,
        graph=drawing,
        timeline=timeline.svg(rows),
        failed_steps=[r.step_id for r in envelope.records if r.status == "failed"],
        can_retry=envelope.status == RunStatus.FAILED,
        can_cancel=live or envelope.status == RunStatus.WAITING,
        signal=envelope.metadata.wait.signal if envelope.metadata.wait else None,
        payload_text=json.dumps(envelope.metadata.payload, indent=2, ensure_ascii=False),
        flower=_flower_links(visit.settings, envelope, tries),
        tries=tries,
        notice=NOTICES.get(notice or ""),
        refresh=REFRESH_SECONDS if live or envelope.status == RunStatus.WAITING else None,
    )


def _edited_patch(envelope: Envelope, text: str | None) -> dict[str, Any] | None:
    """The patch from the stored payload to the edited one (None: unchanged or not edited)."""
    if text is None or not text.strip():
        return None
    try:
        edited = json.loads(text)
    except ValueError as exc:
        raise refusal(422, f"payload: not valid JSON ({exc}); fix it and retry again") from None
    if not isinstance(edited, dict):
        raise refusal(422, "payload: must be a JSON object, like the stored one")
    return merge_patch_between(envelope.metadata.payload, edited) or None


@router.post("/runs/{run_id}/retry", response_class=HTMLResponse)
def retry(run_id: str, visit: Actor, form: Form) -> Response:
    """Retry a failed run from its failed step, with the payload as edited (sent as a merge patch)."""
    envelope, _flow, _tries = _load(run_id)
    patch = _edited_patch(envelope, form.get("payload"))
    if form.get("confirm") != "yes":
        return page(
            visit,
            "confirm.html",
            title=f"Retry run {run_id}?",
            action=f"/runs/{run_id}/retry",
            back=f"/runs/{run_id}",
            fields={"payload": form.get("payload", "")},
            button="Retry the run",
            run=envelope,
            failed_steps=[r.step_id for r in envelope.records if r.status == "failed"],
            patch=patch,
            kind="retry",
        )
    run_control.retry_run(run_id, patch)
    return redirect(visit, f"/runs/{run_id}?notice=retried")


@router.post("/runs/{run_id}/cancel", response_class=HTMLResponse)
def cancel(run_id: str, visit: Actor, form: Form) -> Response:
    """Cancel a queued or running run: its remaining steps do not run."""
    if form.get("confirm") != "yes":
        envelope, _flow, _tries = _load(run_id)
        return page(
            visit,
            "confirm.html",
            title=f"Cancel run {run_id}?",
            action=f"/runs/{run_id}/cancel",
            back=f"/runs/{run_id}",
            fields={},
            button="Cancel the run",
            run=envelope,
            kind="cancel",
        )
    run_control.cancel_run(run_id)
    return redirect(visit, f"/runs/{run_id}?notice=cancelled")


def _signal_data(visit: Visit, form: dict[str, str]) -> Any:
    if form.get("signal") == signals.APPROVAL:
        return {"by": visit.who.name, "comment": form.get("comment") or None}
    text = form.get("data") or "null"
    try:
        return json.loads(text)
    except ValueError as exc:
        raise refusal(422, f"data: not valid JSON ({exc}); fix it and send again", "data") from None


@router.post("/runs/{run_id}/signal", response_class=HTMLResponse)
def signal(run_id: str, visit: Actor, form: Form) -> Response:
    """Send the signal the run waits for (an approval carries who approves and the comment)."""
    name = form.get("signal") or ""
    data = _signal_data(visit, form)
    if form.get("confirm") != "yes":
        envelope, _flow, _tries = _load(run_id)
        return page(
            visit,
            "confirm.html",
            title=f"Send {name} to run {run_id}?",
            action=f"/runs/{run_id}/signal",
            back=f"/runs/{run_id}",
            fields={k: v for k, v in form.items() if k in ("signal", "data", "comment")},
            button="Approve" if name == signals.APPROVAL else "Send the signal",
            run=envelope,
            signal=name,
            data=data,
            kind="signal",
        )
    signals.signal_run(run_id, name, data)
    return redirect(visit, f"/runs/{run_id}?notice=signalled")
