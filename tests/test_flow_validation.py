"""Flow validation: every mistake is reported with its path and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestration.cli.main import cli
from orchestration.errors import FlowValidationError
from orchestration.flows import parse_flow
from tests.support.wiring import registry


def problems(steps: list[dict[str, object]], **extra: object) -> list[str]:
    with pytest.raises(FlowValidationError) as info:
        parse_flow({"name": "bad", "steps": steps, **extra}, registry)
    return info.value.problems


def test_unknown_agent_lists_the_registered_ones() -> None:
    (msg,) = problems(
        [{"id": "a", "agent": "enrich"}, {"id": "b", "agent": "noop"}, {"id": "c", "agent": "scorer"}]
    )
    assert msg.startswith("steps[2].agent: unknown agent 'scorer' (registered: ")
    assert "enrich" in msg
    assert "score" in msg


def test_duplicate_ids_name_both_places() -> None:
    (msg,) = problems(
        [
            {"id": "a", "agent": "noop"},
            {"kind": "parallel", "id": "p", "members": [{"id": "a", "agent": "noop"}]},
        ]
    )
    assert msg == "steps[1].members[0].id: duplicate id 'a' (first used at steps[0]); make it unique"


def test_empty_parallel_and_branch_without_way_out() -> None:
    assert problems([{"kind": "parallel", "id": "p", "members": []}]) == [
        "steps[0].members: List should have at least 1 item after validation, not 0 (give it at least one entry)"
    ]
    assert problems([{"kind": "branch", "id": "b"}]) == [
        "steps[0]: branch 'b' has no way out; add cases or an else"
    ]


def test_reference_to_an_output_no_earlier_step_produces() -> None:
    msgs = problems(
        [
            {"id": "a", "agent": "noop", "input": {"x": "$steps.b.ok"}},
            {"id": "b", "agent": "noop"},
            {
                "kind": "parallel",
                "id": "p",
                "members": [
                    {"id": "m1", "agent": "noop"},
                    {"id": "m2", "agent": "noop", "input": {"y": "$steps.m1.ok"}},
                ],
            },
        ]
    )
    assert msgs == [
        "steps[0].input: $steps.b.ok refers to step 'b', which no earlier step produces (available here: none yet)",
        "steps[2].members[1].input: $steps.m1.ok refers to step 'm1', which no earlier step produces "
        "(available here: a, b)",
    ]


def test_unknown_output_field_and_condition_field() -> None:
    msgs = problems(
        [
            {"id": "s", "agent": "score"},
            {
                "kind": "branch",
                "id": "b",
                "cases": [
                    {
                        "when": {"field": "steps.s.pointz", "op": "gt", "value": 1},
                        "then": {"id": "x", "agent": "noop"},
                    }
                ],
            },
        ]
    )
    assert msgs == [
        "steps[1].cases[0].when: steps.s.pointz: agent 'score' outputs no field 'pointz' "
        "(fields: points, reasons, segment)"
    ]


def test_shape_errors_have_paths_and_hints() -> None:
    msgs = problems(
        [
            {"id": "a", "agent": "noop", "inptu": {}},
            {"kind": "loop", "id": "z"},
            {"kind": "map", "id": "m", "over": "payload.xs", "do": {"id": "i", "agent": "noop"}},
        ]
    )
    assert (
        "steps[0].inptu: unknown field 'inptu' (did you mean 'input'?); known fields: agent, fallback, id, "
        "input, kind, limits, on_error, retry, soft_time_limit, time_limit (remove it or check its spelling)"
    ) in msgs
    assert any(m.startswith("steps[1]: node needs kind") for m in msgs)
    assert any(m.startswith("steps[2].over: Value error, must be a $reference to a list") for m in msgs)


def test_item_outside_a_map_and_fan_out_inside_a_map() -> None:
    msgs = problems(
        [
            {"id": "a", "agent": "noop", "input": {"v": "$item.x"}},
            {
                "kind": "map",
                "id": "m",
                "over": "$payload.xs",
                "do": {
                    "kind": "sequence",
                    "steps": [{"kind": "parallel", "id": "p", "members": [{"id": "q", "agent": "noop"}]}],
                },
            },
        ]
    )
    assert "steps[0].input: $item.x is only defined inside a map's do" in msgs
    assert "steps[1].do.steps[0]: a map's do holds steps only; move the parallel after the map" in msgs


def test_time_limits_must_be_ordered() -> None:
    (msg,) = problems([{"id": "a", "agent": "noop", "soft_time_limit": 9, "time_limit": 5}])
    assert msg == "steps[0].soft_time_limit: 9.0 must be below time_limit 5.0; lower it"


def test_cli_validate_prints_problems_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsteps:\n  - {id: a, agent: scorer}\n")
    good = Path(__file__).parent / "flows" / "nested.yaml"
    result = CliRunner().invoke(cli, ["flows", "validate", str(good), str(bad)])
    assert result.exit_code == 1
    assert "nested.yaml: ok (golden-nested v1)" in result.output
    assert "steps[0].agent: unknown agent 'scorer'" in result.output


def test_cli_graph_prints_mermaid() -> None:
    result = CliRunner().invoke(
        cli, ["flows", "graph", "x", "--file", str(Path(__file__).parent / "flows" / "branch.yaml")]
    )
    assert result.exit_code == 0
    assert result.output.startswith("flowchart TD\n")
    assert "n_route -- \"payload.tier eq 'gold'\" --> n_vip" in result.output


def test_literal_inputs_are_checked_against_the_agents_input_model() -> None:
    msgs = problems(
        [
            {"id": "a", "agent": "sleep", "input": {"seconds": "abc", "bogus": 1}},
            {"id": "b", "agent": "enrich", "input": {"name": "$payload.name", "title": 5}},
            {"id": "c", "agent": "noop", "input": {"anything": "goes"}},  # its model allows extra fields
            {"id": "d", "agent": "sleep", "input": {"seconds": "$payload.wait"}},  # checked at run time
        ]
    )
    assert msgs == [
        "steps[0].input.seconds: Input should be a valid number, unable to parse string as a number "
        "(agent 'sleep'); fix the value",
        "steps[0].input.bogus: agent 'sleep' takes no field 'bogus' (fields: seconds); "
        "remove it or check its spelling",
        "steps[1].input.email: required by agent 'enrich'; give it a value or a $reference",
        "steps[1].input.title: Input should be a valid string (agent 'enrich'); fix the value",
    ]


def test_literal_inputs_unescape_dollars_and_check_map_steps() -> None:
    assert parse_flow(
        {"name": "ok", "steps": [{"id": "a", "agent": "fail", "input": {"message": "$$5 off"}}]}, registry
    )
    (msg,) = problems(
        [
            {
                "kind": "map",
                "id": "m",
                "over": "$payload.xs",
                "do": {"id": "i", "agent": "sleep", "input": {"secs": "$item"}},
            }
        ]
    )
    assert msg.startswith("steps[0].do.input.secs: agent 'sleep' takes no field 'secs' (fields: seconds)")


def test_a_reference_to_a_step_with_a_fallback_must_suit_both_outputs() -> None:
    (msg,) = problems(
        [
            {
                "id": "a",
                "agent": "score",
                "input": {"email": "x@y.co", "free_mail": False},
                "fallback": {"id": "b", "agent": "fail"},
            },
            {"id": "c", "agent": "noop", "input": {"p": "$steps.a.points"}},
        ]
    )
    assert msg == (
        "steps[1].input: $steps.a.points: its fallback's agent 'fail' outputs no field 'points' (fields: attempt)"
    )
