"""Every node kind end to end on the real worker: sequence, parallel, branch, map, and nestings."""

from __future__ import annotations

from tests.support.flows import flow, run, statuses
from tests.support.runs import record


def test_sequence_passes_outputs_through_the_envelope(worker: object) -> None:
    f = flow(
        [
            {"id": "a", "agent": "noop", "input": {"x": "$payload.x"}},
            {"id": "b", "agent": "noop", "input": {"from_a": "$steps.a.echo.x", "lit": "$$5"}},
        ]
    )
    env = run(f, {"x": 7})
    assert env.status == "succeeded"
    assert record(env, "b").output == {"ok": True, "echo": {"from_a": 7, "lit": "$5"}}


def test_parallel_runs_members_then_one_join(worker: object) -> None:
    f = flow(
        [
            {
                "kind": "parallel",
                "id": "fan",
                "members": [
                    {"id": "p1", "agent": "noop", "input": {"n": 1}},
                    {
                        "kind": "sequence",
                        "steps": [{"id": "p2", "agent": "noop"}, {"id": "p3", "agent": "noop"}],
                    },
                    {"id": "p4", "agent": "sleep", "input": {"seconds": 0.05}},
                ],
            },
            {"id": "after", "agent": "noop", "input": {"p1": "$steps.p1.echo.n"}},
        ]
    )
    env = run(f)
    assert env.status == "succeeded", env.metadata.error
    assert statuses(env) == {s: "succeeded" for s in ("p1", "p2", "p3", "p4", "fan", "after")}
    assert record(env, "fan").agent == "engine.join"
    assert record(env, "after").output["echo"] == {"p1": 1}


def _branch_flow() -> list[dict[str, object]]:
    return [
        {"id": "s", "agent": "noop", "input": {"v": "$payload.v"}},
        {
            "kind": "branch",
            "id": "route",
            "cases": [
                {
                    "when": {"field": "steps.s.echo.v", "op": "gte", "value": 10},
                    "then": {"id": "big", "agent": "noop"},
                },
                {
                    "when": {
                        "all": [
                            {"field": "payload.v", "op": "gt", "value": 0},
                            {"not": {"field": "payload.v", "op": "eq", "value": 5}},
                        ]
                    },
                    "then": {
                        "kind": "sequence",
                        "steps": [{"id": "mid1", "agent": "noop"}, {"id": "mid2", "agent": "noop"}],
                    },
                },
            ],
            "else": {"id": "small", "agent": "noop"},
        },
        {"id": "tail", "agent": "noop"},
    ]


def test_branch_takes_first_matching_case_and_skips_the_rest(worker: object) -> None:
    f = flow(_branch_flow())
    big, mid, small = run(f, {"v": 12}), run(f, {"v": 3}), run(f, {"v": 5})
    assert statuses(big) == {
        "s": "succeeded",
        "route": "succeeded",
        "big": "succeeded",
        "mid1": "skipped",
        "mid2": "skipped",
        "small": "skipped",
        "tail": "succeeded",
    }
    assert record(big, "route").output == {"arm": 0, "taken": "cases[0]"}
    assert [statuses(mid)[k] for k in ("big", "mid1", "mid2", "small", "tail")] == [
        "skipped",
        "succeeded",
        "succeeded",
        "skipped",
        "succeeded",
    ]
    assert statuses(small)["small"] == "succeeded"
    assert record(small, "route").output["taken"] == "else"
    assert all(e.status == "succeeded" for e in (big, mid, small))


def test_branch_as_last_node_with_no_match_ends_the_run(worker: object) -> None:
    f = flow(
        [
            {
                "kind": "branch",
                "id": "b",
                "cases": [
                    {
                        "when": {"field": "payload.go", "op": "eq", "value": True},
                        "then": {"id": "x", "agent": "noop"},
                    }
                ],
            }
        ]
    )
    env = run(f, {"go": False})
    assert env.status == "succeeded"
    assert statuses(env) == {"b": "succeeded", "x": "skipped"}


def test_branch_inside_a_parallel_member(worker: object) -> None:
    f = flow(
        [
            {
                "kind": "parallel",
                "id": "fan",
                "members": [
                    {"id": "left", "agent": "noop"},
                    {
                        "kind": "sequence",
                        "steps": [
                            {"id": "pre", "agent": "noop", "input": {"k": "$payload.k"}},
                            {
                                "kind": "branch",
                                "id": "inner",
                                "cases": [
                                    {
                                        "when": {"field": "steps.pre.echo.k", "op": "eq", "value": "a"},
                                        "then": {
                                            "kind": "sequence",
                                            "steps": [
                                                {"id": "ia", "agent": "noop"},
                                                {"id": "ib", "agent": "noop"},
                                            ],
                                        },
                                    }
                                ],
                                "else": {"id": "ic", "agent": "noop"},
                            },
                            {"id": "post", "agent": "noop"},
                        ],
                    },
                ],
            },
            {"id": "end", "agent": "noop"},
        ]
    )
    env = run(f, {"k": "a"})
    assert env.status == "succeeded", env.metadata.error
    st = statuses(env)
    assert [st[k] for k in ("left", "pre", "inner", "ia", "ib", "ic", "post", "fan", "end")] == [
        "succeeded",
        "succeeded",
        "succeeded",
        "succeeded",
        "succeeded",
        "skipped",
        "succeeded",
        "succeeded",
        "succeeded",
    ]


def test_map_of_50_items_with_a_concurrency_cap(worker: object) -> None:
    f = flow(
        [
            {
                "kind": "map",
                "id": "each",
                "over": "$payload.leads",
                "concurrency": 4,
                "do": {"id": "one", "agent": "noop", "input": {"email": "$item.email", "i": "$item.i"}},
            },
            {"id": "count", "agent": "noop", "input": {"all": "$steps.each"}},
        ]
    )
    leads = [{"email": f"u{i}@example.org", "i": i} for i in range(50)]
    env = run(f, {"leads": leads}, timeout=120)
    assert env.status == "succeeded", env.metadata.error
    items = [r for r in env.records if r.step_id.startswith("each[")]
    assert len(items) == 50
    assert {r.status for r in items} == {"succeeded"}
    joined = record(env, "each").output
    assert [o["echo"]["i"] for o in joined] == list(range(50))
    assert len(record(env, "count").output["echo"]["all"]) == 50


def test_map_with_a_sub_sequence_sees_its_own_item_outputs(worker: object) -> None:
    f = flow(
        [
            {
                "kind": "map",
                "id": "m",
                "over": "$payload.xs",
                "concurrency": 2,
                "do": {
                    "kind": "sequence",
                    "steps": [
                        {"id": "first", "agent": "noop", "input": {"x": "$item"}},
                        {"id": "second", "agent": "noop", "input": {"seen": "$steps.first.echo.x"}},
                    ],
                },
            },
        ]
    )
    env = run(f, {"xs": [10, 20, 30]})
    assert env.status == "succeeded", env.metadata.error
    assert [o["echo"]["seen"] for o in record(env, "m").output] == [10, 20, 30]
    assert record(env, "m[1].second").output["echo"] == {"seen": 20}


def test_empty_map_goes_straight_to_its_join(worker: object) -> None:
    f = flow(
        [
            {"kind": "map", "id": "m", "over": "$payload.xs", "do": {"id": "one", "agent": "noop"}},
            {"id": "after", "agent": "noop"},
        ]
    )
    env = run(f, {"xs": []})
    assert env.status == "succeeded"
    assert record(env, "m").output == []
    assert statuses(env)["after"] == "succeeded"


def test_nested_fan_out_in_a_parallel_member_runs_as_its_own_stage(worker: object) -> None:
    f = flow(
        [
            {
                "kind": "parallel",
                "id": "outer",
                "members": [
                    {"id": "flat", "agent": "noop"},
                    {
                        "kind": "sequence",
                        "steps": [
                            {"id": "n1", "agent": "noop"},
                            {
                                "kind": "parallel",
                                "id": "inner",
                                "members": [{"id": "n2", "agent": "noop"}, {"id": "n3", "agent": "noop"}],
                            },
                            {
                                "kind": "map",
                                "id": "mm",
                                "over": "$payload.xs",
                                "do": {"id": "mi", "agent": "noop"},
                            },
                        ],
                    },
                ],
            },
            {"id": "last", "agent": "noop"},
        ]
    )
    env = run(f, {"xs": [1, 2]})
    assert env.status == "succeeded", env.metadata.error
    assert {r.step_id for r in env.records} == {
        "flat",
        "n1",
        "n2",
        "n3",
        "inner",
        "mm",
        "mm[0]",
        "mm[1]",
        "outer",
        "last",
    }
    assert {r.status for r in env.records} == {"succeeded"}


def test_branch_arm_with_a_parallel_block_at_top_level(worker: object) -> None:
    f = flow(
        [
            {
                "kind": "branch",
                "id": "b",
                "cases": [
                    {
                        "when": {"field": "payload.on", "op": "eq", "value": True},
                        "then": {
                            "kind": "parallel",
                            "id": "par",
                            "members": [{"id": "x1", "agent": "noop"}, {"id": "x2", "agent": "noop"}],
                        },
                    }
                ],
            },
            {"id": "z", "agent": "noop"},
        ]
    )
    env = run(f, {"on": True})
    assert env.status == "succeeded", env.metadata.error
    assert statuses(env) == {
        "b": "succeeded",
        "x1": "succeeded",
        "x2": "succeeded",
        "par": "succeeded",
        "z": "succeeded",
    }
