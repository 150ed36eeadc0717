"""The suppression list: the events ``email.unsubscribed``, ``email.bounced`` (hard only) and
``email.complained`` are routed (never rejected) to flows that add the address, each change is
logged; ``campaignflow suppression list|add|remove`` with ``--json`` and one-line errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from orchestration.cli.main import cli
from orchestration.control import suppression
from orchestration.control.manager import manager
from orchestration.control.rejected import EventRejectedError
from tests.support.runs import record, wait_for_run


def event(event_id: str, event_type: str, **payload: Any) -> dict[str, Any]:
    return {"id": event_id, "type": event_type, "payload": payload}


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def test_the_three_events_suppress_and_leave_an_audit(worker: object) -> None:
    events = [
        event("esp-1", "email.unsubscribed", email="Una@Example.org"),
        event(
            "esp-2", "email.bounced", email="bo@example.org", bounce_type="Permanent", detail="5.1.1 no user"
        ),
        event("esp-3", "email.complained", email="cy@example.org"),
        event("esp-4", "email.bounced", email="soft@example.org", smtp_code=452),
        event("esp-5", "email.unsubscribed", email="una@example.org"),  # again: no second entry
    ]
    handles = [manager().ingest_event(e) for e in events]
    assert all(h.status != "rejected" for h in handles)
    envs = [wait_for_run(h.run_id) for h in handles]

    assert [env.status for env in envs] == ["succeeded"] * 5
    assert [env.flow for env in envs[:3]] == ["email_unsubscribed", "email_bounced", "email_complained"]
    soft = record(envs[3], "suppress")
    assert soft.status == "skipped"
    assert soft.note == "soft bounce (452): soft@example.org is not suppressed"
    assert record(envs[4], "suppress").output == {
        "email": "una@example.org",
        "reason": "unsubscribed",
        "suppressed": True,
        "added": False,
    }
    listed = {e["address"]: (e["reason"], e["source"]) for e in suppression.list_entries()}
    assert listed == {
        "una@example.org": ("unsubscribed", f"run:{envs[0].run_id}"),
        "bo@example.org": ("bounced", f"run:{envs[1].run_id}"),
        "cy@example.org": ("complained", f"run:{envs[2].run_id}"),
    }
    assert [h["action"] for h in suppression.history("una@example.org")] == ["add", "again"]
    assert suppression.history("bo@example.org")[0]["detail"] == "5.1.1 no user"
    assert suppression.history("soft@example.org") == []


def test_a_bad_event_gets_one_error_naming_the_field(worker: object) -> None:
    with pytest.raises(EventRejectedError, match=r"payload\.email: required by flow 'email_unsubscribed'"):
        manager().ingest_event(event("esp-bad", "email.unsubscribed", address="x@example.org"))
    env = wait_for_run(manager().ingest_event(event("esp-bad2", "email.bounced", email="nope")).run_id)
    step = record(env, "suppress")
    assert (env.status, step.attempts) == ("failed", 1)
    assert step.error is not None
    assert "email" in step.error.message
    assert "not a single email address: 'nope'" in step.error.message


def test_cli_add_list_remove_with_json(worker: object) -> None:
    added = invoke("suppression", "add", "Ada@Example.org", "--reason", "complained", "--json")
    assert added.exit_code == 0, added.output
    body = json.loads(added.output)
    assert (body["address"], body["reason"], body["source"], body["added"]) == (
        "ada@example.org",
        "complained",
        "cli",
        True,
    )
    again = invoke("suppression", "add", "ada@example.org")
    assert again.exit_code == 0
    assert again.output.strip() == "ada@example.org was already suppressed (complained, from cli)"
    assert (
        invoke("suppression", "add", "bob@example.org").output.strip()
        == "bob@example.org suppressed (manual)"
    )

    listed = json.loads(invoke("suppression", "list", "--json").output)
    assert sorted(e["address"] for e in listed) == ["ada@example.org", "bob@example.org"]
    assert listed[0]["created_at"].endswith("Z")
    only = json.loads(invoke("suppression", "list", "--reason", "manual", "--json").output)
    assert [e["address"] for e in only] == ["bob@example.org"]
    table = invoke("suppression", "list")
    assert "ada@example.org" in table.output
    assert "complained" in table.output

    removed = invoke("suppression", "remove", "ada@example.org", "--json")
    assert removed.exit_code == 0
    assert json.loads(removed.output)["removed"] is True
    assert [h["action"] for h in suppression.history("ada@example.org")] == ["add", "again", "remove"]
    assert [e["address"] for e in suppression.list_entries()] == ["bob@example.org"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ("suppression", "remove", "nobody@example.org"),
            1,
            "nobody@example.org is not on the suppression list; see `campaignflow suppression list`",
        ),
        (
            ("suppression", "add", "not-an-address"),
            1,
            "address: not a single email address: 'not-an-address'",
        ),
        (("suppression", "add", "a@example.org", "--reason", "bored"), 2, "'bored' is not one of"),
    ],
)
def test_cli_errors_are_one_line(worker: object, args: tuple[str, ...], code: int, message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    as_json = invoke(*args, "--json")
    if code == 1:
        error = json.loads(as_json.output)["error"]
        assert message in error["message"]
