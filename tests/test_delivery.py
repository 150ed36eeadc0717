"""The delivery orchestrator: ``message.requested`` -> render a template -> send by email -> the
delivery ledger, on the session worker with a real SMTP server; and inline with no SMTP (outbox)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from orchestration.control.manager import manager
from orchestration.errors import FieldError
from orchestration.orchestrators import DeliveryOrchestrator
from orchestration.store import sql_engine
from tests.support.config import settings_env
from tests.support.runs import record, wait_for_run
from tests.support.smtp import SmtpSink
from tests.support.wiring import app, engine, flows, registry

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:aiosmtpd.*")


def requested(event_id: str, **payload: Any) -> dict[str, Any]:
    return {"id": event_id, "type": "message.requested", "payload": payload}


def ledger_rows() -> list[tuple[Any, ...]]:
    with sql_engine().connect() as conn:
        query = (
            "select idempotency_key, run_id, channel, status, recipient, subject from delivery order by id"
        )
        return [tuple(r) for r in conn.execute(sa.text(query))]


@pytest.fixture
def smtp(worker: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpSink]:
    with SmtpSink() as sink, settings_env(monkeypatch, smtp_url=sink.url()):
        yield sink


def test_message_requested_is_rendered_sent_and_recorded(smtp: SmtpSink) -> None:
    event = requested("evt-msg-1", to="bob@example.org", template="nurture_welcome", vars={"name": "Bob"})
    handle = manager().ingest_event(event)
    env = wait_for_run(handle.run_id)

    assert env.status == "succeeded", env.model_dump_json(indent=2)
    assert env.metadata.orchestrator == "delivery"
    assert env.flow == "delivery"
    assert [(r.step_id, r.agent, r.status) for r in env.records] == [
        ("render", "render_template", "succeeded"),
        ("send", "deliver_email", "succeeded"),
    ]
    [msg] = smtp.messages
    assert (msg["To"], msg["Subject"]) == ("bob@example.org", "Welcome, Bob")
    assert msg.get_content().startswith("Hi Bob,")
    assert ledger_rows() == [
        (f"{handle.run_id}:send", handle.run_id, "email", "sent", "bob@example.org", "Welcome, Bob")
    ]
    assert manager().ingest_event(event).duplicate is True  # the same event id: no second run
    assert len(smtp.messages) == 1


def test_missing_placeholder_fails_the_run_once_without_sending(smtp: SmtpSink) -> None:
    event = requested("evt-msg-2", to="bob@example.org", subject="Hi $first", body="Dear $first, $offer")
    env = wait_for_run(manager().ingest_event(event).run_id)

    assert env.status == "failed"
    render = record(env, "render")
    assert render.status == "failed"
    assert render.attempts == 1  # not retried: the input is wrong
    assert render.error is not None
    assert "vars.first, vars.offer: template 'inline' needs a value" in render.error.message
    assert env.record("send") is None
    assert smtp.messages == []
    assert ledger_rows() == []


def test_payload_problems_name_the_field() -> None:
    orchestrator = DeliveryOrchestrator(engine(), flows())
    with pytest.raises(FieldError) as info:
        orchestrator.flow({"to": "x@y.com", "channel": "sms", "subject": "s"})
    assert info.value.problems == [
        "payload.channel: unknown channel 'sms'; use one of email",
        "payload.template: name a template, or give payload.subject and payload.body",
    ]
    with pytest.raises(FieldError, match=r"payload\.to: required by flow 'delivery'"):
        orchestrator.run({"template": "notice"}, mode="inline")


def test_inline_without_smtp_goes_to_the_outbox(clean_db: str) -> None:
    """What the embedded demo does: no mail server configured, the message is recorded, not sent."""
    payload = {"to": "eve@example.org", "template": "notice", "vars": {"subject": "Ping", "text": "Hello."}}
    handle = DeliveryOrchestrator(engine(), flows()).run(payload, mode="inline")

    assert handle.status == "succeeded"
    send = record(wait_for_run(handle.run_id), "send")
    assert send is not None
    assert (send.output["channel"], send.output["status"]) == ("outbox", "outbox")
    assert ledger_rows() == [
        (f"{handle.run_id}:send", handle.run_id, "outbox", "outbox", "eve@example.org", "Ping")
    ]


def test_delivery_is_rate_limited_per_channel_agent() -> None:
    spec = registry.agent("deliver_email")
    assert (spec.rate_limit, spec.queue, spec.side_effects) == ("10/s", "agents.delivery", True)
    assert app.tasks[spec.task_name].rate_limit == "10/s"
