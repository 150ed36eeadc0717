"""A hot lead end to end on the agents' queues (the first vertical slice): lead.created -> enrich ->
score -> (hot) crm_write -> compose -> send, each step on its agent's queue. No SMTP server and no
LLM endpoint here: the template composes the message and the send step records it in the outbox."""

from __future__ import annotations

import sqlalchemy as sa

from orchestration.control.manager import manager
from orchestration.store import sql_engine
from tests.support.runs import record, wait_for_run

LEAD = {
    "id": "evt-lead-1",
    "type": "lead.created",
    "payload": {
        "email": "Ada@Acme-Robotics.com",
        "name": "Ada",
        "title": "VP Marketing",
        "source": "demo_request",
    },
}


def test_lead_runs_on_three_queues_and_leaves_envelope(worker: object) -> None:
    handle = manager().ingest_event(LEAD)
    assert handle.duplicate is False

    env = wait_for_run(handle.run_id)

    assert env.status == "succeeded", env.model_dump_json(indent=2)
    ran = [r for r in env.records if r.status != "skipped"]
    assert [r.step_id for r in ran] == ["enrich", "score", "route", "crm", "compose", "send"]
    assert {r.status for r in ran} == {"succeeded"}
    assert [r.agent for r in ran] == [
        "enrich",
        "score",
        "engine.branch",
        "crm_write",
        "compose_message",
        "deliver_email",
    ]
    assert {r.step_id for r in env.records if r.status == "skipped"} == {"crm_cold", "nurture"}
    assert record(env, "compose").output["source"] == "template"
    assert record(env, "send").output["channel"] == "outbox"
    assert record(env, "enrich").output["company"] == "Acme Robotics"
    assert record(env, "score").output["segment"] == "hot"
    assert env.metadata.event_id == "evt-lead-1"
    assert env.metadata.started_at is not None
    assert env.metadata.finished_at is not None
    with sql_engine().connect() as conn:
        row = conn.execute(sa.text("select company, segment, writes from crm_contact")).one()
    assert tuple(row) == ("Acme Robotics", "hot", 1)
