"""SMTP deferrals and refusals against a real SMTP server that answers 421/451/550 on demand: a 4xx
is retried (no sooner than the pause it earned the receiving domain) and slows that domain, a
delivery to it recovers; a 5xx is not retried, and a 550 refusing the recipient suppresses it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from agents.delivery import DeliverInput, SmtpDeferred, deliver_email
from agents.errors import DeferredAgentError
from orchestration.control import suppression
from orchestration.control.manager import manager
from orchestration.engine.context import StepContext
from orchestration.settings import get_settings
from orchestration.store import domains, frequency, sql_engine
from orchestration.store.base import utcnow
from tests.support.config import settings_env
from tests.support.runs import record, wait_for_run
from tests.support.smtp import SmtpSink

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:aiosmtpd.*")

SLOW = "slow.example"


@pytest.fixture
def smtp(worker: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpSink]:
    with (
        SmtpSink() as sink,
        settings_env(monkeypatch, smtp_url=sink.url(), domain_backoff_seconds="0.2", frequency_cap_day="5"),
    ):
        yield sink


def message(event_id: str, to: str, **payload: Any) -> dict[str, Any]:
    body = {"to": to, "subject": "Hello", "body": "A note.", **payload}
    return {"id": event_id, "type": "message.requested", "payload": body}


def domain_state(domain: str) -> domains.State:
    with sql_engine().connect() as conn:
        return domains.state(conn, domain)


def step_ctx(sink: SmtpSink) -> StepContext:
    config = {"database_url": get_settings().effective_database_url(), "smtp_url": sink.url()}
    return StepContext(str(uuid.uuid4()), "send", 1, config)


def test_a_4xx_is_retried_and_slows_the_domain_until_a_delivery_recovers_it(smtp: SmtpSink) -> None:
    to = f"greylisted@{SLOW}"
    smtp.defer(to, 2)
    env = wait_for_run(manager().ingest_event(message("defer-1", to)).run_id, timeout=60)

    send = record(env, "send")
    assert (env.status, send.status, send.attempts) == ("succeeded", "succeeded", 3)
    assert [e.type for e in send.attempt_errors] == ["SmtpDeferred", "SmtpDeferred"]
    assert all("451" in e.message for e in send.attempt_errors)
    assert smtp.tries[to] == 3
    assert len(smtp.to(to)) == 1
    state = domain_state(SLOW)
    assert state.strikes == 1  # two deferrals, one delivery
    assert state.last_reply is not None
    assert "451" in state.last_reply
    with sql_engine().connect() as conn:
        assert frequency.used(conn, to) == 1  # three tries, one message counted


def test_a_deferring_domain_is_paused_with_growing_delay_and_not_contacted_meanwhile(
    smtp: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    with settings_env(monkeypatch, domain_backoff_seconds="60", domain_backoff_max_seconds="150"):
        closing = DeliverInput(to=f"closing@{SLOW}", subject="Hi", body="x", message_class="transactional")
        with pytest.raises(SmtpDeferred) as first:
            deliver_email(closing, step_ctx(smtp))
        assert first.value.retryable
        assert first.value.code == 421
        assert 59 < first.value.retry_after <= 60

        other = DeliverInput(to=f"someone@{SLOW}", subject="Hi", body="x", message_class="transactional")
        with pytest.raises(DeferredAgentError, match=f"receiving domain {SLOW} is paused") as paused:
            deliver_email(other, step_ctx(smtp))
        assert 0 < paused.value.retry_after <= 60
        assert f"someone@{SLOW}" not in smtp.tries  # the server was not asked

        with sql_engine().begin() as conn:
            second = domains.defer(conn, SLOW, "451", base=60, ceiling=150)
            third = domains.defer(conn, SLOW, "451", base=60, ceiling=150)
        now = utcnow()
        assert (second.strikes, round(second.wait(now) / 10)) == (2, 12)  # 120 s
        assert (third.strikes, round(third.wait(now) / 10)) == (3, 15)  # 240 s, capped at 150

    # another domain is not slowed by it
    fine = DeliverInput(to="fine@fast.example", subject="Hi", body="x", message_class="transactional")
    assert deliver_email(fine, step_ctx(smtp)).status == "sent"


def test_a_5xx_is_not_retried_and_a_550_suppresses_the_address(smtp: SmtpSink) -> None:
    to = "bounce-ada@guards.example"
    env = wait_for_run(manager().ingest_event(message("bounce-1", to)).run_id)

    send = record(env, "send")
    assert (env.status, send.status, send.attempts) == ("failed", "failed", 1)
    assert send.error is not None
    assert send.error.type == "SmtpRefused"
    assert "550" in send.error.message
    [entry] = suppression.list_entries()
    assert (entry["address"], entry["reason"], entry["source"]) == (to, "bounced", f"smtp:{env.run_id}:send")
    assert "550" in str(entry["detail"])
    with sql_engine().connect() as conn:
        assert frequency.used(conn, to) == 0  # not sent: its count given back
    assert domain_state("guards.example").strikes == 0  # a refusal does not slow the domain

    again = wait_for_run(manager().ingest_event(message("bounce-2", to)).run_id)
    assert record(again, "send").status == "skipped"
    assert "(bounced, since" in str(record(again, "send").note)
    assert smtp.tries[to] == 1
