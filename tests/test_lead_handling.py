"""Lead handling end to end on the session worker, with a real SMTP server (aiosmtpd) and a local
OpenAI-compatible endpoint: hot leads get one email, cold leads go onto the nurture list, and a
redelivered send step sends nothing more."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from orchestration.control.manager import manager
from orchestration.store import sql_engine
from tests.support.config import settings_env
from tests.support.llm_server import FakeLLM
from tests.support.runs import envelope, record, wait_for_run
from tests.support.smtp import SmtpSink
from tests.support.wiring import app

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:aiosmtpd.*")

HOT = {"email": "ada@acme-robotics.com", "name": "Ada", "title": "VP Marketing", "source": "demo_request"}
COLD = {"email": "bob@gmail.com", "name": "Bob", "source": "newsletter"}


def lead(event_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"id": event_id, "type": "lead.created", "payload": payload}


def ledger_rows() -> list[tuple[Any, ...]]:
    with sql_engine().connect() as conn:
        query = "select idempotency_key, channel, status, recipient from delivery order by id"
        return [tuple(r) for r in conn.execute(sa.text(query))]


@pytest.fixture
def smtp(worker: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpSink]:
    """An SMTP server the running worker sends to (CAMPAIGNFLOW_SMTP_URL for this test only)."""
    with (
        SmtpSink() as sink,
        settings_env(monkeypatch, smtp_url=sink.url(query="from=sales@campaignflow.test")),
    ):
        yield sink


def test_hot_lead_gets_one_email(smtp: SmtpSink) -> None:
    env = wait_for_run(manager().ingest_event(lead("evt-hot", HOT)).run_id)

    assert env.status == "succeeded", env.model_dump_json(indent=2)
    status = {r.step_id: r.status for r in env.records}
    assert status == {
        "enrich": "succeeded",
        "score": "succeeded",
        "route": "succeeded",
        "crm": "succeeded",
        "compose": "succeeded",
        "send": "succeeded",
        "crm_cold": "skipped",
        "nurture": "skipped",
    }
    [msg] = smtp.messages
    assert msg["To"] == "ada@acme-robotics.com"
    assert msg["From"] == "sales@campaignflow.test"
    assert msg["Subject"] == "Acme Robotics and campaignflow: a next step"
    assert "As VP Marketing at Acme Robotics" in msg.get_content()
    send = record(env, "send").output
    assert (send["channel"], send["status"], send["message_id"]) == ("email", "sent", msg["Message-ID"])
    assert ledger_rows() == [(f"{env.run_id}:send", "email", "sent", "ada@acme-robotics.com")]
    with sql_engine().connect() as conn:
        assert tuple(conn.execute(sa.text("select segment, writes from crm_contact")).one()) == ("hot", 1)


def test_cold_lead_goes_to_nurture_without_email(smtp: SmtpSink) -> None:
    env = wait_for_run(manager().ingest_event(lead("evt-cold", COLD)).run_id)

    assert env.status == "succeeded", env.model_dump_json(indent=2)
    assert record(env, "score").output["segment"] == "cold"
    ran = [r.step_id for r in env.records if r.status == "succeeded"]
    assert ran == ["enrich", "score", "route", "crm_cold", "nurture"]
    skipped = {r.step_id for r in env.records if r.status == "skipped"}
    assert skipped == {"crm", "compose", "compose_template", "send"}
    assert smtp.messages == []
    assert record(env, "nurture").output == {
        "email": "bob@gmail.com",
        "list": "nurture",
        "added": True,
        "added_by_run": env.run_id,
    }
    assert ledger_rows() == [("nurture:nurture:bob@gmail.com", "nurture", "listed", "bob@gmail.com")]


def test_redelivered_send_step_sends_nothing_more(smtp: SmtpSink) -> None:
    """The worker died after the email left but before the step record was written: the message is
    delivered again (acks_late). The step runs again, finds the ledger row sent, and sends nothing."""
    run_id = manager().ingest_event(lead("evt-redeliver", HOT)).run_id
    first = wait_for_run(run_id)
    assert first.status == "succeeded"
    assert len(smtp.messages) == 1
    with sql_engine().begin() as conn:  # roll the store back to "send in flight"
        conn.execute(
            sa.text(
                "update step_record set status = 'running', output = null, finished_at = null "
                "where run_id = :r and step_id = 'send'"
            ),
            {"r": run_id},
        )
        conn.execute(
            sa.text("update run set status = 'running', finished_at = null where run_id = :r"), {"r": run_id}
        )

    redelivered = app.send_task(
        "campaignflow.agent.deliver_email", kwargs={"run_id": run_id, "step_id": "send", "final": True}
    )
    redelivered.get(timeout=30)
    env = wait_for_run(run_id)

    assert env.status == "succeeded", env.model_dump_json(indent=2)
    assert len(smtp.messages) == 1
    assert ledger_rows() == [(f"{run_id}:send", "email", "sent", "ada@acme-robotics.com")]
    sends = [r for r in env.records if r.step_id == "send"]
    assert len(sends) == 1
    assert sends[0].status == "succeeded"
    assert sends[0].output["duplicate"] is True
    assert sends[0].output["message_id"] == record(first, "send").output["message_id"]
    assert sends[0].attempts == 2


def test_llm_429_is_retried_and_its_message_is_sent(smtp: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> None:
    answer = "Subject: Ada, robots that follow up\n\nHi Ada, a quick idea for Acme Robotics."
    with (
        FakeLLM([429, answer]) as llm,
        settings_env(monkeypatch, llm_base_url=llm.base_url, llm_api_key="sk-t"),
    ):
        env = wait_for_run(manager().ingest_event(lead("evt-llm", HOT)).run_id)

    assert env.status == "succeeded", env.model_dump_json(indent=2)
    compose = record(env, "compose")
    assert compose.attempts == 2
    assert len(llm.requests) == 2
    assert [e.type for e in compose.attempt_errors] == ["TransientAgentError"]
    assert "answered 429" in compose.attempt_errors[0].message
    assert compose.output["source"] == "llm"
    [msg] = smtp.messages
    assert msg["Subject"] == "Ada, robots that follow up"
    assert msg.get_content().strip() == "Hi Ada, a quick idea for Acme Robotics."
    assert record(envelope(env.run_id), "send").output["status"] == "sent"


def test_hot_lead_gets_the_template_message_when_the_llm_is_down(
    smtp: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        FakeLLM(default=503) as llm,
        settings_env(monkeypatch, llm_base_url=llm.base_url, llm_api_key="sk-t"),
    ):
        env = wait_for_run(manager().ingest_event(lead("evt-llm-down", HOT)).run_id, timeout=60)

    assert env.status == "succeeded", env.model_dump_json(indent=2)
    compose = record(env, "compose")  # every try answered 503: recorded as such
    assert (compose.status, compose.attempts, len(llm.requests)) == ("failed", 4, 4)
    assert all("answered 503" in e.message for e in compose.attempt_errors)
    fallback = record(env, "compose_template")
    assert fallback.status == "succeeded"
    assert fallback.output["source"] == "template"
    [msg] = smtp.messages
    assert msg["Subject"] == "Acme Robotics and campaignflow: a next step"
    assert "As VP Marketing at Acme Robotics" in msg.get_content()
    assert record(env, "send").output["status"] == "sent"
