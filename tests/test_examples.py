"""The example flows in examples/flows validate and run end to end with their sample payloads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestration.flows import load_flow
from tests.support.flows import run
from tests.support.runs import record
from tests.support.wiring import registry

EXAMPLES = sorted((Path(__file__).parents[1] / "examples" / "flows").glob("*.yaml"))


def test_there_are_examples() -> None:
    assert EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_flow_runs(worker: object, path: Path) -> None:
    flow = load_flow(path, registry)
    payload = json.loads(path.with_suffix(".payload.json").read_text())
    env = run(flow, payload, timeout=120)
    assert env.status == "succeeded", env.model_dump_json(indent=2)
    kinds = {node.kind for node in flow.walk()}
    if path.stem == "lead_review":
        assert kinds == {"sequence", "step", "parallel", "branch", "map"}
        statuses = {r.step_id: r.status for r in env.records}
        assert statuses["notify_owner"] == "succeeded"
        assert statuses["park"] == "skipped"
        assert statuses["optional_extra"] == "failed"
        assert statuses["final_write_backup"] == "succeeded"
        assert record(env, "flaky_lookup").attempts == 2
        assert [o["segment"] for o in record(env, "each_lead").output] == ["hot", "cold", "warm"]
