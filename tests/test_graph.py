"""``flows graph``: every flow as a Mermaid flowchart, fallback steps included.

Golden files: regenerate after an intended change with ``UPDATE_GOLDEN=1 pytest tests/test_graph.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestration.flows import Flow, load_flow
from orchestration.flows.graph import to_mermaid
from tests.support.flows import flow
from tests.support.wiring import flows, registry

FLOWS = Path(__file__).parent / "flows"
GOLDEN = Path(__file__).parent / "golden" / "graph"


def _flow(name: str) -> Flow:
    path = FLOWS / f"{name}.yaml"
    return load_flow(path, registry) if path.exists() else flows().get(name)


@pytest.mark.parametrize(
    "name", ["sequence", "parallel", "branch", "map", "nested", "waits", "lead_handling"]
)
def test_graph_matches_golden(name: str) -> None:
    actual = to_mermaid(_flow(name))
    path = GOLDEN / f"{name}.mmd"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(actual)
    assert actual == path.read_text()


def test_a_fallback_hangs_off_its_step_and_leads_where_the_step_leads() -> None:
    lines = to_mermaid(
        flow(
            [
                {
                    "id": "a",
                    "agent": "fail",
                    "fallback": {"id": "b", "agent": "noop", "fallback": {"id": "c", "agent": "noop"}},
                },
                {"id": "next", "agent": "noop"},
            ]
        )
    ).splitlines()
    assert '    n_b["b<br/><i>noop</i>"]' in lines
    assert "    n_a -.->|fails| n_b" in lines
    assert "    n_b -.->|fails| n_c" in lines  # a fallback's own fallback too
    assert [line for line in lines if line.endswith("--> n_next")] == [
        "    n_a --> n_next",
        "    n_b --> n_next",
        "    n_c --> n_next",
    ]


def test_the_lead_flow_draws_the_template_fallback() -> None:
    lines = to_mermaid(flows().get("lead_handling")).splitlines()
    assert "    n_compose -.->|fails| n_compose_template" in lines
    assert "    n_compose_template --> n_send" in lines
