"""Message delivery by email over SMTP, exactly once per idempotency key as far as the ledger can tell.

The server is ``smtp_url`` from the context (``CAMPAIGNFLOW_SMTP_URL``):
``smtp://[user:password@]host:port[?starttls=1&from=sender@example.com]`` (``smtps://`` for TLS from
the first byte). With no ``smtp_url`` the message goes to the **outbox** instead: a ledger row with
channel ``outbox`` and nothing sent, so the embedded demo runs without a mail server.

Once per step: the ``delivery`` ledger row for ``ctx.idempotency_key`` (``run_id:step_id``) is
claimed (status ``sending``) before the SMTP conversation and marked ``sent`` after the server
accepted the message. A redelivered or retried step that finds ``sent`` returns the stored result and
sends nothing. A failure before the server accepted the message (refused connection, an SMTP error
reply) marks the row ``failed``, so the next try may claim it again; a connection lost during DATA
counts as such a failure although the server may have kept the message.

The crash window, stated plainly: if the process dies after the server accepted the message but
before the row is marked ``sent`` (or the database is unreachable at that moment), the row stays
``sending``. A later try does not touch it while the claim is younger than ``SEND_LEASE_SECONDS``
(another try may still be mid-send); after that it takes the claim over and sends again. Such a
duplicate carries the same ``Message-ID`` (derived from the idempotency key), which mail systems use
to recognise it. Closing the window entirely needs a server-side dedupe on that header.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import BaseModel, Field, field_validator

from agents import ledger
from agents.context import AgentContext
from agents.errors import PermanentAgentError, TransientAgentError

#: A ``sending`` claim younger than this belongs to a try that may still be running. It must exceed
#: the agent's hard time limit (60 s in the catalog), after which a try is surely dead.
SEND_LEASE_SECONDS = 120.0
SMTP_TIMEOUT_SECONDS = 20.0
DEFAULT_SENDER = "campaignflow@localhost"
_TRUE = {"1", "true", "yes", "on"}


class DeliverInput(BaseModel):
    to: str = Field(description="Recipient address.")
    subject: str = Field(min_length=1, max_length=400)
    body: str = Field(min_length=1)
    sender: str | None = Field(None, description="From address; default: from= in the SMTP URL.")

    @field_validator("to")
    @classmethod
    def _address(cls, value: str) -> str:
        value = value.strip()
        local, at, domain = value.rpartition("@")
        if not at or not local or "." not in domain or any(c in value for c in " \r\n<>,"):
            raise ValueError(f"not a single email address: {value!r}")
        return value


class DeliverOutput(BaseModel):
    channel: Literal["email", "outbox"] = Field(description="outbox: recorded, not sent (no SMTP).")
    status: str
    recipient: str
    subject: str | None
    message_id: str | None
    sent_at: datetime | None
    duplicate: bool = Field(description="True when this try found the delivery done and sent nothing.")


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    username: str | None
    password: str | None
    starttls: bool
    implicit_tls: bool
    sender: str


def parse_smtp_url(url: str) -> SmtpServer:
    """``smtp://[user:password@]host:port[?starttls=1&from=addr]``, or a clear error about the URL."""
    fix = "set CAMPAIGNFLOW_SMTP_URL to smtp://[user:password@]host:port[?starttls=1&from=addr]"
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise PermanentAgentError(f"CAMPAIGNFLOW_SMTP_URL: scheme {parts.scheme!r} unsupported; {fix}")
    try:
        port = parts.port
    except ValueError:
        raise PermanentAgentError(f"CAMPAIGNFLOW_SMTP_URL: the port is not a number; {fix}") from None
    if not parts.hostname:
        raise PermanentAgentError(f"CAMPAIGNFLOW_SMTP_URL: no host; {fix}")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    implicit = parts.scheme == "smtps"
    return SmtpServer(
        host=parts.hostname,
        port=port or (465 if implicit else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        starttls=query.get("starttls", "0").lower() in _TRUE,
        implicit_tls=implicit,
        sender=query.get("from") or DEFAULT_SENDER,
    )


def message_id_for(key: str, sender: str) -> str:
    """The same ``Message-ID`` on every try of one step, so a resent message is recognisable."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    domain = sender.rpartition("@")[2] or "localhost"
    return f"<{digest}@{domain}>"


def build_message(inp: DeliverInput, sender: str, message_id: str, key: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = inp.to
    msg["Subject"] = inp.subject
    msg["Message-ID"] = message_id
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["X-Campaignflow-Key"] = key
    msg.set_content(inp.body)
    return msg


def send(server: SmtpServer, msg: EmailMessage) -> None:
    """One SMTP conversation. Raises agent errors that say whether another try may succeed."""
    where = f"SMTP server {server.host}:{server.port}"
    try:
        smtp: smtplib.SMTP
        if server.implicit_tls:
            smtp = smtplib.SMTP_SSL(server.host, server.port, timeout=SMTP_TIMEOUT_SECONDS)
        else:
            smtp = smtplib.SMTP(server.host, server.port, timeout=SMTP_TIMEOUT_SECONDS)
        with smtp:
            if server.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if server.username:
                smtp.login(server.username, server.password or "")
            smtp.send_message(msg)
    except smtplib.SMTPAuthenticationError as exc:
        reply = (
            exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        )
        raise PermanentAgentError(
            f"{where} refused the login ({exc.smtp_code} {reply}); fix user:password in "
            "CAMPAIGNFLOW_SMTP_URL, or add starttls=1 if the server wants TLS first"
        ) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise PermanentAgentError(f"{where}: {exc}; adjust starttls or credentials in the URL") from None
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        error = TransientAgentError if all(400 <= c < 500 for c in codes) else PermanentAgentError
        raise error(f"{where} refused recipient {msg['To']}: {exc.recipients}") from None
    except smtplib.SMTPResponseException as exc:
        error = PermanentAgentError if exc.smtp_code >= 500 else TransientAgentError
        raise error(f"{where} answered {exc.smtp_code}: {exc.smtp_error!r}") from None
    except ssl.SSLCertVerificationError as exc:
        raise PermanentAgentError(f"{where}: TLS certificate not trusted ({exc.verify_message})") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise TransientAgentError(f"{where} unavailable: {type(exc).__name__}: {exc}") from exc


def _output(entry: ledger.Entry, *, duplicate: bool) -> DeliverOutput:
    channel: Literal["email", "outbox"] = "outbox" if entry.channel == "outbox" else "email"
    return DeliverOutput(
        channel=channel,
        status=entry.status,
        recipient=entry.recipient,
        subject=entry.subject,
        message_id=entry.message_id,
        sent_at=entry.sent_at,
        duplicate=duplicate,
    )


def deliver_email(inp: DeliverInput, ctx: AgentContext) -> DeliverOutput:
    db = ctx.config.get("database_url")
    key = ctx.idempotency_key
    smtp_url = ctx.config.get("smtp_url")
    server = parse_smtp_url(smtp_url) if smtp_url else None
    sender = inp.sender or (server.sender if server else DEFAULT_SENDER)
    message_id = message_id_for(key, sender)
    if server is None:
        outbox = ledger.claim(
            db,
            key=key,
            run_id=ctx.run_id,
            channel="outbox",
            recipient=inp.to,
            subject=inp.subject,
            status="outbox",
            message_id=message_id,
        )
        return _output(outbox.entry, duplicate=not outbox.owned)
    claim = ledger.claim(
        db,
        key=key,
        run_id=ctx.run_id,
        channel="email",
        recipient=inp.to,
        subject=inp.subject,
        message_id=message_id,
        lease_seconds=SEND_LEASE_SECONDS,
    )
    if not claim.owned:
        if claim.entry.status == "sending":
            raise TransientAgentError(
                f"delivery {key} was claimed at {claim.entry.claimed_at} by a try that may still be "
                f"sending; it is taken over after {SEND_LEASE_SECONDS:.0f}s"
            )
        return _output(claim.entry, duplicate=True)
    try:
        send(server, build_message(inp, sender, message_id, key))
    except (TransientAgentError, PermanentAgentError):
        ledger.mark(db, key, "failed")
        raise
    return _output(ledger.mark(db, key, "sent", message_id=message_id), duplicate=False)
