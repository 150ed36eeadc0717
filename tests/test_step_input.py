"""Every agent step's record keeps the input its agent ran with: references resolved, the input
model's defaults applied, secret fields redacted; written when the try starts, one record whatever
the tries, on the workers and inline alike (map items and fallbacks too)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from orchestration.control import run_control as control
from orchestration.engine.inputs import REDACTED
from orchestration.orchestrators.base import FlowRunner, Mode
from orchestration.store import sql_engine
from orchestration.store.tables import step_t
from tests.support.agents import ledger
from tests.support.flows import flow, run
from tests.support.runs import envelope, record, step_error, wait_for_run
from tests.support.wait import eventually
from tests.support.wiring import engine

RETRY_ONCE = {"max_attempts": 2, "backoff_seconds": 0.01, "jitter": False}

STEPS: list[dict[str, Any]] = [
    {"id": "a", "agent": "noop", "input": {"who": "$payload.name", "flow": "$run.flow", "price": "$$5"}},
    {
        "id": "b",
        "agent": "fail",
        "input": {"message": "$steps.a.echo.who", "fail_attempts": 1},
        "retry": RETRY_ONCE,
    },
    {"kind": "map", "id": "m", "over": "$payload.xs", "do": {"id": "item", "agent": "noop"}},
    {
        "id": "z",
        "agent": "fail",
        "input": {"permanent": True},
        "fallback": {"id": "zb", "agent": "noop", "input": {"instead_of": "$payload.name"}},
    },
]
PAYLOAD = {"name": "Ada", "xs": [{"k": 1}, 7]}
#: The input of each record: what its agent received.
EXPECTED = {
    "a": {"who": "Ada", "flow": "audit", "price": "$5"},
    # the model's defaults applied (message from the reference, permanent by default)
    "b": {"message": "Ada", "permanent": False, "fail_attempts": 1},
    "m[0]": {"k": 1},
    "m[1]": {"item": 7},  # a map item that is not an object comes as {"item": ...}
    "m": None,  # a join ran no agent
    "z": {"message": "failing on purpose", "permanent": True, "fail_attempts": 1_000_000},
    "zb": {"instead_of": "Ada"},
}


def _rows(run_id: str, step_id: str) -> int:
    with sql_engine().connect() as conn:
        query = sa.select(sa.func.count()).where(step_t.c.run_id == run_id, step_t.c.step_id == step_id)
        return int(conn.execute(query).scalar_one())


@pytest.mark.parametrize("mode", ["async", "inline"])
def test_each_record_keeps_the_resolved_input(worker: object, mode: Mode) -> None:
    env = run(flow(STEPS, name="audit"), PAYLOAD, mode=mode)

    assert env.status == "succeeded", env.model_dump_json(indent=2)
    assert {sid: record(env, sid).input for sid in EXPECTED} == EXPECTED
    retried = record(env, "b")
    assert (retried.status, retried.attempts) == ("succeeded", 2)
    assert _rows(env.run_id, "b") == 1  # the second try updated the record, with its input
    assert record(env, "z").status == "failed"


def test_the_input_is_in_the_record_while_the_try_runs(worker: object) -> None:
    f = flow([{"id": "held", "agent": "gate", "input": {"label": "$payload.label"}}], name="held")
    handle = FlowRunner(engine(), f).run({"label": "first"}, mode="async")

    def running_with_input() -> bool:
        rec = record(envelope(handle.run_id), "held")
        assert (rec.status, rec.input) == ("running", {"label": "first", "timeout": 30.0})
        return True

    try:
        eventually(running_with_input, 30, "the running step's record to show its input")
    finally:
        ledger().set(f"gate:{handle.run_id}:held", "1")
    env = wait_for_run(handle.run_id)
    assert env.status == "succeeded"
    assert record(env, "held").input == {"label": "first", "timeout": 30.0}


def test_a_retried_run_records_the_input_its_new_try_ran_with(worker: object) -> None:
    f = flow(
        [{"id": "b", "agent": "fail", "input": {"permanent": True, "fail_attempts": "$payload.fails"}}],
        name="patched",
    )
    failed = run(f, {"fails": 5})
    assert failed.status == "failed"
    assert record(failed, "b").input == {
        "message": "failing on purpose",
        "permanent": True,
        "fail_attempts": 5,
    }

    control.retry_run(failed.run_id, {"fails": 0})
    env = wait_for_run(failed.run_id)

    assert env.status == "succeeded", env.model_dump_json(indent=2)
    rec = record(env, "b")
    assert (rec.status, rec.attempts) == ("succeeded", 2)
    assert rec.input == {"message": "failing on purpose", "permanent": True, "fail_attempts": 0}
    assert _rows(env.run_id, "b") == 1


@pytest.mark.parametrize("mode", ["async", "inline"])
def test_secret_fields_are_kept_redacted_and_reach_the_agent(worker: object, mode: Mode) -> None:
    steps = [
        {
            "id": "login",
            "agent": "secret_echo",
            "input": {
                "user": "$payload.user",
                "token": "$payload.token",
                "account": {"login": "ada", "password": "$payload.password"},
            },
        }
    ]
    payload = {"user": "ada", "token": "tok-123456", "password": "pw-12"}
    env = run(flow(steps, name="secrets"), payload, mode=mode)

    rec = record(env, "login")
    assert env.status == "succeeded", env.model_dump_json(indent=2)
    assert rec.input == {
        "user": "ada",
        "token": REDACTED,
        "account": {"login": "ada", "password": REDACTED},
        "region": "eu",
    }
    assert rec.output == {"user": "ada", "token_length": 10, "password_length": 5}


def test_input_that_does_not_fit_is_kept_as_resolved_with_secrets_redacted(worker: object) -> None:
    steps = [
        {"id": "login", "agent": "secret_echo", "input": {"token": "$payload.token", "user": "$payload.user"}}
    ]
    env = run(flow(steps, name="bad-secret"), {"token": "tok-123456"})  # no user: the input does not fit

    rec = record(env, "login")
    assert env.status == "failed"
    assert step_error(rec).type == "ValidationError"
    assert rec.input == {"token": REDACTED, "user": None}
