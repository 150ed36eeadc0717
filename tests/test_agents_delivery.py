"""The delivery and nurture agents called directly (as a step would call them) against a real SMTP
server (aiosmtpd on 127.0.0.1) and the session's Postgres ledger; the outbox against SQLite."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from agents import ledger
from agents.delivery import DeliverInput, deliver_email, parse_smtp_url
from agents.errors import PermanentAgentError, TransientAgentError
from agents.nurture import NurtureInput, nurture_add
from agents.tables import delivery
from orchestration.engine.context import StepContext
from tests.support.smtp import SmtpSink, free_port, self_signed_cert, server_tls_context

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:aiosmtpd.*")

MSG = DeliverInput(to="ada@acme-robotics.com", subject="Hello Ada", body="A short note.\n")


def ctx(db: str, smtp_url: str | None, run_id: str | None = None, step_id: str = "send") -> StepContext:
    return StepContext(run_id or str(uuid.uuid4()), step_id, 1, {"database_url": db, "smtp_url": smtp_url})


def rows(db: str) -> list[tuple[str, str, str, str]]:
    with ledger.engine(db).connect() as conn:
        query = sa.select(
            delivery.c.idempotency_key,
            delivery.c.channel,
            delivery.c.status,
            delivery.c.recipient,
        ).order_by(delivery.c.id)
        return [(r[0], r[1], r[2], r[3]) for r in conn.execute(query)]


def test_sends_once_per_idempotency_key(clean_db: str) -> None:
    with SmtpSink() as sink:
        c = ctx(clean_db, sink.url(query="from=sales@campaignflow.test"))
        first = deliver_email(MSG, c)
        again = deliver_email(MSG, c)  # a redelivered step: same run_id:step_id

    assert len(sink.messages) == 1
    msg = sink.messages[0]
    assert (msg["To"], msg["From"], msg["Subject"]) == (MSG.to, "sales@campaignflow.test", "Hello Ada")
    assert msg.get_content().strip() == "A short note."
    assert msg["Message-ID"] == first.message_id
    assert msg["X-Campaignflow-Key"] == c.idempotency_key
    assert (first.channel, first.status, first.duplicate) == ("email", "sent", False)
    assert (again.status, again.duplicate, again.message_id) == ("sent", True, first.message_id)
    assert rows(clean_db) == [(c.idempotency_key, "email", "sent", MSG.to)]


def test_credentials_are_used_and_a_refusal_is_permanent(clean_db: str) -> None:
    with SmtpSink(credentials=("mailer", "s3cret")) as sink:
        c = ctx(clean_db, sink.url("mailer", "wrong"))
        with pytest.raises(PermanentAgentError, match="CAMPAIGNFLOW_SMTP_URL"):
            deliver_email(MSG, c)
        assert [r[2] for r in rows(clean_db)] == ["failed"]
        fixed = StepContext(c.run_id, c.step_id, 2, {**c.config, "smtp_url": sink.url("mailer", "s3cret")})
        out = deliver_email(MSG, fixed)  # the failed claim is taken over by the next try

    assert sink.logins == ["mailer"]
    assert len(sink.messages) == 1
    assert out.status == "sent"
    assert [r[2] for r in rows(clean_db)] == ["sent"]


@pytest.mark.parametrize(
    ("recipient", "error"), [("bounce@acme.com", PermanentAgentError), ("busy@acme.com", TransientAgentError)]
)
def test_recipient_refusals_say_whether_to_retry(clean_db: str, recipient: str, error: type) -> None:
    with SmtpSink() as sink, pytest.raises(error, match=recipient):
        deliver_email(MSG.model_copy(update={"to": recipient}), ctx(clean_db, sink.url()))
    assert sink.messages == []
    assert [r[2] for r in rows(clean_db)] == ["failed"]


def test_starttls_with_credentials(clean_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = self_signed_cert(tmp_path)
    with SmtpSink(credentials=("mailer", "s3cret"), tls_context=server_tls_context(cert, key)) as sink:
        plain = ctx(clean_db, sink.url("mailer", "s3cret"))
        with pytest.raises(PermanentAgentError, match=r"530 .*STARTTLS"):  # the server wants TLS first
            deliver_email(MSG, plain)
        untrusted = ctx(clean_db, sink.url("mailer", "s3cret", query="starttls=1"))
        with pytest.raises(PermanentAgentError, match="TLS certificate not trusted"):
            deliver_email(MSG, untrusted)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # now the client trusts the server
        out = deliver_email(MSG, untrusted)
    assert out.status == "sent"
    assert sink.logins == ["mailer"]
    assert len(sink.messages) == 1


def test_server_down_is_transient_then_next_try_sends(clean_db: str) -> None:
    port = free_port()
    c = ctx(clean_db, f"smtp://127.0.0.1:{port}")
    with pytest.raises(TransientAgentError, match="unavailable"):
        deliver_email(MSG, c)
    with SmtpSink(port=port) as sink:  # the server comes up on that port
        out = deliver_email(MSG, c)
    assert out.status == "sent"
    assert len(sink.messages) == 1


def test_fresh_sending_claim_waits_and_a_stale_one_is_taken_over(clean_db: str) -> None:
    """The crash window: a try claimed the key and died (or is still sending)."""
    with SmtpSink() as sink:
        c = ctx(clean_db, sink.url())
        claim = ledger.claim(
            clean_db,
            key=c.idempotency_key,
            run_id=c.run_id,
            channel="email",
            recipient=MSG.to,
            subject=MSG.subject,
        )
        assert claim.owned
        with pytest.raises(TransientAgentError, match="may still be sending"):
            deliver_email(MSG, c)
        assert sink.messages == []
        with ledger.engine(clean_db).begin() as conn:
            conn.execute(delivery.update().values(created_at=datetime.now(UTC) - timedelta(hours=1)))
        out = deliver_email(MSG, c)
    assert out.status == "sent"
    assert not out.duplicate
    assert len(sink.messages) == 1


def test_outbox_without_smtp_on_sqlite(tmp_path: Path) -> None:
    """The embedded default: no SMTP server, a SQLite run store; recorded once, nothing sent."""
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    delivery.metadata.create_all(ledger.engine(db), tables=[delivery])
    c = ctx(db, None)
    first = deliver_email(MSG, c)
    again = deliver_email(MSG, c)
    assert (first.channel, first.status, first.duplicate, first.sent_at) == ("outbox", "outbox", False, None)
    assert (again.channel, again.duplicate) == ("outbox", True)
    assert rows(db) == [(c.idempotency_key, "outbox", "outbox", MSG.to)]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://mail:25", "scheme 'http'"),
        ("smtp://mail:twenty", "the port is not a number"),
        ("smtp://:25", "no host"),
    ],
)
def test_bad_smtp_url_names_the_setting(url: str, problem: str) -> None:
    with pytest.raises(PermanentAgentError, match=f"CAMPAIGNFLOW_SMTP_URL: {problem}"):
        parse_smtp_url(url)


def test_smtp_url_parts() -> None:
    server = parse_smtp_url("smtp://me%40x.com:p%3Ass@mail.x.com:587?starttls=1&from=hi@x.com")
    assert (server.host, server.port, server.username, server.password) == (
        "mail.x.com",
        587,
        "me@x.com",
        "p:ss",
    )
    assert server.starttls
    assert not server.implicit_tls
    assert server.sender == "hi@x.com"
    assert parse_smtp_url("smtps://mail.x.com").port == 465


def test_nurture_list_membership_is_once_per_email(clean_db: str) -> None:
    first_run, second_run = str(uuid.uuid4()), str(uuid.uuid4())
    inp = NurtureInput(email="Bob@Example.org", reason="cold")
    a = nurture_add(inp, ctx(clean_db, None, first_run, "nurture"))
    redelivered = nurture_add(inp, ctx(clean_db, None, first_run, "nurture"))
    later = nurture_add(inp, ctx(clean_db, None, second_run, "nurture"))
    assert (a.added, redelivered.added, later.added) == (True, True, False)
    assert later.added_by_run == first_run
    assert rows(clean_db) == [("nurture:nurture:bob@example.org", "nurture", "listed", "bob@example.org")]
