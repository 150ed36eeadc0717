"""Golden tests: flow file -> compiled Celery canvas (as a dict), for every node kind and nestings.

Regenerate after an intended change with ``UPDATE_GOLDEN=1 pytest tests/test_compile_golden.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from orchestration.flows import load_flow
from orchestration.flows.model import MapNode, SleepNode, WaitNode
from tests.support.wiring import engine, registry

FLOWS = Path(__file__).parent / "flows"
GOLDEN = Path(__file__).parent / "golden"


def _canvas_dict(name: str) -> dict[str, object]:
    flow = load_flow(FLOWS / f"{name}.yaml", registry)
    compiled: dict[str, object] = {"canvas": json.loads(json.dumps(engine().compile(flow, "RUN")))}
    for node in flow.walk():  # what a map task replaces itself with at run time, for 4 items
        if isinstance(node, MapNode):
            canvas = engine().map_canvas(node, "RUN", 4, final=False)
            compiled[f"map:{node.id}"] = json.loads(json.dumps(canvas))
        if isinstance(node, SleepNode | WaitNode):  # what a wake-up publishes: the continuation
            resumed = engine().compile(flow, "RUN", resume=node.id)
            compiled[f"resume:{node.id}"] = json.loads(json.dumps(resumed))
        if isinstance(node, WaitNode) and node.on_timeout is not None:
            timed_out = engine().compile(flow, "RUN", resume=node.id, timed_out=True)
            compiled[f"timeout:{node.id}"] = json.loads(json.dumps(timed_out))
    return compiled


@pytest.mark.parametrize("name", ["sequence", "parallel", "branch", "map", "nested", "waits"])
def test_compiled_canvas_matches_golden(name: str) -> None:
    actual = _canvas_dict(name)
    path = GOLDEN / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(json.dumps(actual, indent=2, sort_keys=True) + "\n")
    assert actual == json.loads(path.read_text())


def _members(header: object) -> list[object]:
    """A chord header is a list of signatures or a group dict."""
    if isinstance(header, dict):
        return list(header["kwargs"]["tasks"])
    assert isinstance(header, list)
    return header


def _tasks(sig: object) -> list[str]:
    """Task names in a canvas dict, depth first."""
    if isinstance(sig, dict):
        if sig.get("subtask_type") in ("chain", "group"):
            return [t for s in sig["kwargs"]["tasks"] for t in _tasks(s)]
        if sig.get("subtask_type") == "chord":
            return _tasks(_members(sig["kwargs"]["header"])) + _tasks(sig["kwargs"]["body"])
        return [sig["task"]]
    if isinstance(sig, list):
        return [t for s in sig for t in _tasks(s)]
    return []


def test_only_safe_shapes_are_emitted() -> None:
    """No chord inside a chord header, every header member a task or a flat chain of tasks."""

    def check(sig: dict[str, object], in_header: bool) -> None:
        kind = sig.get("subtask_type")
        kwargs = sig.get("kwargs", {})
        assert isinstance(kwargs, dict)
        if kind == "chord":
            assert not in_header, "chord nested in a chord header"
            for member in _members(kwargs["header"]):
                assert isinstance(member, dict)
                check(member, True)
            check(kwargs["body"], False)
        elif kind in ("chain", "group"):
            assert not (in_header and kind == "group"), "group nested in a chord header"
            for task in kwargs["tasks"]:
                check(task, in_header)
        else:  # a task: chord members keep their Celery result for the join; no other task needs it
            options = sig.get("options", {})
            assert isinstance(options, dict)
            assert options.get("ignore_result", False) is not in_header

    for name in ("sequence", "parallel", "branch", "map", "nested"):
        for canvas in _canvas_dict(name).values():
            assert isinstance(canvas, dict)
            check(canvas, False)


def test_every_step_is_an_immutable_signature_with_ids_only() -> None:
    canvas = _canvas_dict("nested")["canvas"]

    def leaves(sig: object) -> list[dict[str, object]]:
        assert isinstance(sig, dict)
        kind = sig.get("subtask_type")
        kwargs = sig["kwargs"]
        assert isinstance(kwargs, dict)
        if kind == "chord":
            return [leaf for m in _members(kwargs["header"]) for leaf in leaves(m)] + leaves(kwargs["body"])
        if kind in ("chain", "group"):
            return [leaf for t in kwargs["tasks"] for leaf in leaves(t)]
        return [sig]

    assert isinstance(canvas, dict)
    for leaf in leaves(canvas):
        assert leaf["immutable"] is True
        assert leaf["args"] == []
        assert isinstance(leaf["kwargs"], dict)
        assert set(leaf["kwargs"]) <= {"run_id", "step_id", "node_id", "final"}
    assert _tasks(canvas)[-1] == "campaignflow.engine.map"
