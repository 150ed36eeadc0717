"""The sending guards on the session worker, with a real SMTP server and the Postgres store:
frequency caps (per recipient, per day and week, per campaign and overall, on the recipient's
calendar day; transactional messages exempt), the List-Unsubscribe headers, and both guards exact
under 50 concurrent runs for one recipient."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from orchestration.control import suppression
from orchestration.control.manager import manager
from orchestration.engine.guards import StepGuards, local_day
from orchestration.envelope import Envelope
from orchestration.orchestrators import DeliveryOrchestrator
from orchestration.settings import get_settings
from orchestration.store import frequency, migrate, sql_engine
from orchestration.unsubscribe import verify
from tests.support.config import settings_env
from tests.support.runs import record, wait_for_run
from tests.support.smtp import SmtpSink
from tests.support.wiring import engine, flows

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:aiosmtpd.*")

ADA = "ada@guards.example"


@pytest.fixture
def smtp(worker: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpSink]:
    with SmtpSink() as sink, settings_env(monkeypatch, smtp_url=sink.url()):
        yield sink


def message(event_id: str, to: str = ADA, campaign: str | None = None, **payload: Any) -> dict[str, Any]:
    body = {"to": to, "subject": f"Offer {event_id}", "body": "Hello", **payload}
    event: dict[str, Any] = {"id": event_id, "type": "message.requested", "payload": body}
    if campaign is not None:
        event["campaign"] = campaign
    return event


def send_all(events: list[dict[str, Any]], timeout: float = 120.0) -> list[Envelope]:
    """Ingest every event from 8 threads (the worker's concurrency; no more connections to the
    shared Postgres than that), then wait for every run to end."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        run_ids = list(pool.map(lambda e: manager().ingest_event(e).run_id, events))
    return [wait_for_run(run_id, timeout=timeout) for run_id in run_ids]


def sends(envs: list[Envelope]) -> list[str]:
    """The status of each run's send step."""
    return sorted(record(env, "send").status for env in envs)


def test_a_capped_message_is_skipped_with_a_note_and_the_run_goes_on(
    smtp: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    with settings_env(monkeypatch, frequency_cap_day="2"):
        envs = [wait_for_run(manager().ingest_event(message(f"cap-{i}")).run_id) for i in range(3)]

    assert [env.status for env in envs] == ["succeeded"] * 3
    assert [record(env, "send").status for env in envs] == ["succeeded", "succeeded", "skipped"]
    capped = record(envs[2], "send")
    assert capped.note is not None
    assert capped.note.startswith("frequency cap reached: 2 message(s) per day (")
    assert "CAMPAIGNFLOW_FREQUENCY_CAP_DAY" in capped.note
    assert capped.output is not None
    assert capped.output["status"] == "skipped"
    assert capped.error is None
    assert len(smtp.to(ADA)) == 2


def test_transactional_messages_are_exempt_and_carry_no_unsubscribe_headers(
    smtp: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    with settings_env(monkeypatch, frequency_cap_day="1", frequency_cap_week="1"):
        first = wait_for_run(manager().ingest_event(message("tx-0")).run_id)
        receipts = [
            wait_for_run(manager().ingest_event(message(f"tx-{i}", message_class="transactional")).run_id)
            for i in (1, 2)
        ]
        capped = wait_for_run(manager().ingest_event(message("tx-3")).run_id)

    assert sends([first, *receipts]) == ["succeeded"] * 3
    assert record(capped, "send").status == "skipped"
    marketing, *transactional = smtp.to(ADA)
    assert len(transactional) == 2
    for msg in transactional:
        assert msg["List-Unsubscribe"] is None
        assert msg["List-Unsubscribe-Post"] is None
    assert marketing["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = str(marketing["List-Unsubscribe"]).strip("<>")
    assert url.startswith(f"{get_settings().unsubscribe_url}?token=")
    secret = get_settings().unsubscribe_secret
    assert secret is not None
    assert verify(secret, url.partition("?token=")[2]) == ADA


def test_the_mailto_joins_the_url_in_the_header(smtp: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> None:
    with settings_env(monkeypatch, unsubscribe_mailto="unsubscribe@mail.example.test"):
        wait_for_run(manager().ingest_event(message("mailto-1")).run_id)
    [msg] = smtp.to(ADA)
    https, mailto = (part.strip().strip("<>") for part in str(msg["List-Unsubscribe"]).split(","))
    assert https.startswith("https://mail.example.test/v1/unsubscribe?token=")
    assert mailto.startswith("mailto:unsubscribe@mail.example.test?subject=unsubscribe%20")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_a_marketing_message_without_unsubscribe_settings_fails_once_naming_them(
    smtp: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    with settings_env(monkeypatch, unsubscribe_secret=""):
        env = wait_for_run(manager().ingest_event(message("nosecret-1")).run_id)
    send = record(env, "send")
    assert (env.status, send.status, send.attempts) == ("failed", "failed", 1)
    assert send.error is not None
    assert "CAMPAIGNFLOW_UNSUBSCRIBE_SECRET" in send.error.message
    assert smtp.messages == []


def _reserve(key: str, day: date, caps: frequency.Caps, campaign: str | None = None) -> str | None:
    with sql_engine().begin() as conn:
        return frequency.reserve(conn, key=key, recipient=ADA, campaign=campaign, day=day, caps=caps)


def test_caps_count_calendar_days_and_weeks_per_campaign_and_overall(worker: object) -> None:
    monday, tuesday, next_monday = date(2026, 11, 30), date(2026, 12, 1), date(2026, 12, 7)
    per_campaign = frequency.Caps(campaign_day=1, campaign_week=2)
    assert _reserve("k1", monday, per_campaign, "spring") is None
    assert _reserve("k1", monday, per_campaign, "spring") is None  # the same message again: counted once
    assert "per day from campaign 'spring'" in str(_reserve("k2", monday, per_campaign, "spring"))
    assert _reserve("k3", monday, per_campaign, "autumn") is None  # another campaign
    assert _reserve("k4", tuesday, per_campaign, "spring") is None
    week_full = _reserve("k5", date(2026, 12, 6), per_campaign, "spring")  # Sunday, the same week
    assert week_full is not None
    assert "per week from campaign 'spring' (the week of 2026-11-30 to 2026-12-06" in week_full
    assert _reserve("k6", next_monday, per_campaign, "spring") is None

    overall = frequency.Caps(day=2, week=5)
    assert "2 message(s) per day (2026-11-30" in str(_reserve("k7", monday, overall))  # k1, k3 counted
    assert _reserve("k8", date(2026, 12, 2), overall) is None  # week: k1 k3 k4 k8 = 4
    assert _reserve("k9", date(2026, 12, 3), overall) is None  # 5
    assert "5 message(s) per week" in str(_reserve("k10", date(2026, 12, 4), overall))
    with sql_engine().connect() as conn:
        assert frequency.used(conn, ADA) == 6


def test_the_day_is_the_recipients_own() -> None:
    now = datetime(2026, 12, 1, 20, 30, tzinfo=UTC)
    assert local_day(None, now) == date(2026, 12, 1)
    assert local_day("Pacific/Auckland", now) == date(2026, 12, 2)  # 09:30 the next morning there
    assert local_day("America/Los_Angeles", datetime(2026, 12, 1, 5, tzinfo=UTC)) == date(2026, 11, 30)


def test_an_unknown_time_zone_fails_the_send_once_naming_the_field(
    smtp: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = wait_for_run(manager().ingest_event(message("tz-1", timezone="Mars/Olympus")).run_id)
    send = record(env, "send")
    assert (env.status, send.attempts) == ("failed", 1)
    assert send.error is not None
    assert "timezone" in send.error.message
    assert "unknown time zone 'Mars/Olympus'; use an IANA name" in send.error.message


def test_fifty_threads_admitting_one_recipient_at_once_count_exactly_the_cap(
    worker: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    barrier = threading.Barrier(50)
    answers: list[str | None] = []
    lock = threading.Lock()

    def admit() -> None:
        guards = StepGuards(str(uuid.uuid4()), "send", "spring")
        barrier.wait()
        answer = guards.admit(ADA, marketing=True, timezone="Europe/Berlin")
        with lock:
            answers.append(answer)

    with settings_env(monkeypatch, frequency_cap_day="7"):
        threads = [threading.Thread(target=admit) for _ in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert answers.count(None) == 7
    assert len(answers) == 50
    with sql_engine().connect() as conn:
        assert frequency.used(conn, ADA) == 7


def test_fifty_concurrent_runs_for_one_recipient_never_exceed_the_cap(
    smtp: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    with settings_env(monkeypatch, frequency_cap_day="3", frequency_cap_campaign_day="5"):
        envs = send_all([message(f"burst-{i}", campaign="spring") for i in range(50)])

    assert {env.status for env in envs} == {"succeeded"}
    assert sends(envs) == ["skipped"] * 47 + ["succeeded"] * 3
    assert len(smtp.to(ADA)) == 3
    with sql_engine().connect() as conn:
        assert frequency.used(conn, ADA) == 3
        ledger = conn.execute(sa.text("select count(*) from delivery where status = 'sent'")).scalar_one()
    assert ledger == 3


def test_a_suppressed_address_gets_nothing_from_fifty_concurrent_runs(smtp: SmtpSink) -> None:
    suppression.add(ADA, reason="unsubscribed", source="test")
    envs = send_all(
        [message(f"supp-{i}", message_class="transactional" if i % 2 else None) for i in range(50)]
    )

    assert {env.status for env in envs} == {"succeeded"}
    assert sends(envs) == ["skipped"] * 50
    notes = {record(env, "send").note for env in envs}
    [note] = notes
    assert note is not None
    assert note.startswith(f"suppressed: {ADA} is on the suppression list (unsubscribed, since ")
    assert smtp.messages == []
    assert smtp.tries == {}
    with sql_engine().connect() as conn:
        assert conn.execute(sa.text("select count(*) from delivery")).scalar_one() == 0
        assert frequency.used(conn, ADA) == 0


def test_an_inline_run_records_the_skip_as_a_worker_does(smtp: SmtpSink) -> None:
    suppression.add(ADA, reason="complained", source="test")
    handle = DeliveryOrchestrator(engine(), flows()).run(
        {"to": ADA, "subject": "Hi", "body": "Hello"}, mode="inline", event_id="inline-1"
    )
    env = wait_for_run(handle.run_id)
    assert env.status == "succeeded"
    send = record(env, "send")
    assert (send.status, send.attempts, send.error) == ("skipped", 1, None)
    assert str(send.note).startswith(f"suppressed: {ADA} is on the suppression list (complained, since ")
    assert smtp.messages == []


def test_the_guards_work_on_the_embedded_sqlite_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    migrate.upgrade(url)
    with settings_env(monkeypatch, database_url=url, frequency_cap_day="2"):
        answers = [StepGuards(f"run-{i}", "send").admit(ADA, marketing=True) for i in range(3)]
        assert answers[:2] == [None, None]
        assert "frequency cap reached: 2 message(s) per day" in str(answers[2])
        assert StepGuards("run-0", "send").admit(ADA, marketing=True) is None  # counted once
        assert StepGuards("run-9", "send").admit(ADA, marketing=False) is None  # transactional
        suppression.add(ADA, reason="complained", source="test")
        assert "on the suppression list (complained" in str(
            StepGuards("run-8", "send").admit(ADA, marketing=False)
        )
    sql_engine(url).dispose()
    sql_engine(url, autocommit=True).dispose()
