"""Declarations reject unknown fields: an agent, a retry policy, every flow node and condition, a
routing rule and a campaign name the field, the likely one and the known ones."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from orchestration.control.campaigns import CampaignSpec
from orchestration.control.manager import Route, file_routes
from orchestration.errors import ConfigurationError, FlowValidationError
from orchestration.flows import parse_flow
from orchestration.flows.retry import RetryPolicy
from orchestration.registry import AgentSpec
from tests.support.wiring import registry


class Empty(BaseModel):
    pass


def agent(**extra: Any) -> AgentSpec:
    return AgentSpec(
        name="typo", handler=print, input_model=Empty, output_model=Empty, pool="utility", **extra
    )


def one_error(build: Callable[[], object]) -> str:
    with pytest.raises(ValidationError) as info:
        build()
    (error,) = info.value.errors()
    assert error["type"] == "extra_forbidden"
    return str(error["msg"])


@pytest.mark.parametrize(
    ("build", "field", "guess", "known"),
    [
        (
            lambda: agent(global_concurency=2),
            "global_concurency",
            "global_concurrency",
            "pool, rate_limit, retry",
        ),
        (lambda: RetryPolicy.model_validate({"max_attempt": 3}), "max_attempt", "max_attempts", "jitter"),
        (
            lambda: Route.model_validate({"event_type": "lead.created", "flow": "x", "campaing": "q4"}),
            "campaing",
            "campaign",
            "event_type, flow, id, orchestrator",
        ),
        (
            lambda: CampaignSpec.model_validate(
                {"name": "w", "event_type": "tick", "every": 60, "pauesd": 1}
            ),
            "pauesd",
            None,
            "enabled, event_template, event_type, every, every_seconds",
        ),
    ],
)
def test_unknown_fields_name_the_field_the_guess_and_the_known_ones(
    build: Callable[[], object], field: str, guess: str | None, known: str
) -> None:
    msg = one_error(build)
    assert msg.startswith(f"unknown field {field!r}")
    assert (f"(did you mean {guess!r}?)" in msg) == (guess is not None)
    assert "; known fields: " in msg
    assert known in msg


def test_an_agents_typo_is_no_longer_ignored() -> None:
    msg = one_error(lambda: agent(concurrency=3, global_concurency=2))
    assert msg.startswith(
        "unknown field 'global_concurency' (did you mean 'global_concurrency'?); known fields: "
    )
    assert agent(concurrency=3).concurrency == 3


def test_every_flow_node_and_condition_names_its_unknown_fields() -> None:
    with pytest.raises(FlowValidationError) as info:
        parse_flow(
            {
                "name": "typos",
                "deadline_second": 5,
                "steps": [
                    {"id": "a", "agent": "noop", "retry": {"max_attempts": 2, "backof_seconds": 1}},
                    {"kind": "parallel", "id": "p", "member": []},
                    {
                        "kind": "branch",
                        "id": "b",
                        "cases": [
                            {
                                "when": {"field": "payload.x", "opp": "eq"},
                                "then": {"id": "c", "agent": "noop"},
                            }
                        ],
                    },
                    {
                        "kind": "map",
                        "id": "m",
                        "over": "$payload.xs",
                        "do": {"id": "d", "agent": "noop"},
                        "concurency": 2,
                    },
                ],
            },
            registry,
        )
    problems = info.value.problems
    expected = {
        "deadline_second": "deadline_seconds",
        "steps[0].retry.backof_seconds": "backoff_seconds",
        "steps[1].member": "members",
        "steps[2].cases[0].when.opp": "op",
        "steps[3].concurency": "concurrency",
    }
    for path, guess in expected.items():
        line = next((p for p in problems if p.startswith(f"{path}: ")), None)
        assert line is not None, f"no problem at {path}: {problems}"
        assert f"(did you mean {guess!r}?); known fields: " in line
        assert line.endswith("(remove it or check its spelling)")


def test_a_routes_file_with_a_typo_names_it(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text("- {event_type: lead.created, orchestrator: lead_handling, campain: q4}\n")
    with pytest.raises(
        ConfigurationError,
        match=r"routes\[0\]\.campain: unknown field 'campain' \(did you mean 'campaign'\?\)",
    ):
        file_routes(routes)
