"""Events resume waiting runs: a routing rule with ``resume`` sends an ``email.replied`` event to
the runs whose wait for ``replied`` correlates with the event's ``payload.email`` (the wait's
``correlate: $payload.email``); the same event twice resumes once; with no run waiting, the event is
kept as rejected (replayable), never dropped."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from orchestration.cli.main import cli
from orchestration.control.correlate import Resume
from orchestration.control.manager import Route, add_route, manager
from orchestration.control.rejected import EventRejectedError
from tests.support.runs import record, wait_for_run
from tests.support.wiring import flows
from tests.waits.helpers import calls, signals_of, start, wait_for_status

DRIP = {
    "name": "waits-drip",
    "steps": [
        {"id": "welcome", "agent": "effect"},
        {"kind": "wait", "id": "reply", "signal": "replied", "correlate": "$payload.email", "timeout": "1h"},
        {"id": "thank", "agent": "effect", "input": {"text": "$steps.reply.data.text"}},
    ],
}


def replied(event_id: str, email: str) -> dict[str, object]:
    return {"id": event_id, "type": "email.replied", "payload": {"email": email, "text": f"re: {event_id}"}}


def test_a_correlated_event_resumes_only_the_runs_waiting_for_it(worker: object) -> None:
    add_route(Route(event_type="email.replied", resume=Resume(signal="replied", key="payload.email")))
    ada = start(DRIP, {"email": "ada@example.com"})
    bob = start(DRIP, {"email": "bob@example.com"})
    for run_id in (ada, bob):
        wait_for_status(run_id, "waiting")

    handle = manager().ingest_event(replied("mail-1", "ada@example.com"))
    assert handle.as_dict() == {"run_id": ada, "status": "resumed", "duplicate": False, "resumed": [ada]}
    env = wait_for_run(ada)
    assert env.status == "succeeded", env.metadata.error
    assert record(env, "reply").output["data"] == {"email": "ada@example.com", "text": "re: mail-1"}
    assert record(env, "thank").input["text"] == "re: mail-1"
    assert wait_for_status(bob, "waiting").status == "waiting"  # not its email

    again = manager().ingest_event(replied("mail-1", "ada@example.com"))  # the same event again
    assert again.as_dict() == {"run_id": ada, "status": "resumed", "duplicate": True, "resumed": [ada]}
    assert len(signals_of(ada)) == 1
    assert calls(ada, "thank") == 1

    with pytest.raises(EventRejectedError, match="no waiting run correlates"):
        manager().ingest_event(replied("mail-2", "nobody@example.com"))


def test_a_rule_can_start_a_run_and_resume_waiting_ones(worker: object) -> None:
    flows().add({"name": "waits-log-reply", "steps": [{"id": "log", "agent": "effect"}]})
    runner = CliRunner()
    added = runner.invoke(
        cli,
        [
            "routes",
            "add",
            "email.replied",
            "--flow",
            "waits-log-reply",
            "--resume",
            "replied",
            "--key",
            "payload.email",
        ],
    )
    assert added.exit_code == 0, added.output
    assert "flow waits-log-reply and runs waiting for replied (by payload.email)" in added.output
    half = runner.invoke(cli, ["routes", "add", "email.replied", "--resume", "replied"])
    assert half.exit_code == 1
    listed = json.loads(runner.invoke(cli, ["routes", "list", "--json"]).stdout)
    assert listed[0]["resume"] == {"signal": "replied", "key": "payload.email"}

    ada = start(DRIP, {"email": "ada@example.com"})
    wait_for_status(ada, "waiting")
    handle = manager().ingest_event(replied("mail-3", "ada@example.com"))
    assert handle.run_id != ada
    assert handle.resumed == (ada,)
    assert wait_for_run(handle.run_id).status == "succeeded"
    assert wait_for_run(ada).status == "succeeded"
