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

The sending guards (``ctx.guards``) come first: a suppressed recipient, or a marketing message over
a frequency cap, is not sent and the step is ``skipped`` with the reason as its note. A marketing
message (``message_class``, default) carries ``List-Unsubscribe`` and ``List-Unsubscribe-Post``
(RFC 8058); a transactional one neither, and it is not counted against the caps. An SMTP 4xx is a
deferral: the try is retried, no sooner than the pause it earned the recipient's domain, and sends
to that domain wait the pause out; a delivery to it shortens the next pause. A 5xx is permanent; a
550/551/553 refusing the recipient is a hard bounce that also suppresses the address.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator

from agents import ledger
from agents.context import AgentContext
from agents.errors import DeferredAgentError, PermanentAgentError, SkipStep, TransientAgentError
from agents.smtp import DEFAULT_SENDER, SmtpDeferred, SmtpRefused, SmtpServer, parse_smtp_url, send

#: A ``sending`` claim younger than this belongs to a try that may still be running. It must exceed
#: the agent's hard time limit (60 s in the catalog), after which a try is surely dead.
SEND_LEASE_SECONDS = 120.0

__all__ = [
    "DeliverInput",
    "DeliverOutput",
    "SmtpDeferred",
    "SmtpRefused",
    "deliver_email",
    "parse_smtp_url",
    "single_address",
]


def single_address(value: str) -> str:
    """``value`` trimmed, or a ValueError when it is not one plain email address."""
    value = value.strip()
    local, at, domain = value.rpartition("@")
    if not at or not local or "." not in domain or any(c in value for c in " \r\n<>,"):
        raise ValueError(f"not a single email address: {value!r}")
    return value


class DeliverInput(BaseModel):
    to: str = Field(description="Recipient address.")
    subject: str = Field(min_length=1, max_length=400)
    body: str = Field(min_length=1)
    sender: str | None = Field(None, description="From address; default: from= in the SMTP URL.")
    message_class: Literal["marketing", "transactional"] | None = Field(
        None,
        description="marketing (the default): counted against the frequency caps, carries "
        "List-Unsubscribe; transactional: neither.",
    )
    timezone: str | None = Field(
        None, description="The recipient's IANA time zone: the caps count their calendar day. Default UTC."
    )

    @property
    def marketing(self) -> bool:
        return self.message_class != "transactional"

    @property
    def domain(self) -> str:
        return self.to.rpartition("@")[2].lower()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Berlin") from None
        return value

    @field_validator("to")
    @classmethod
    def _address(cls, value: str) -> str:
        return single_address(value)


class DeliverOutput(BaseModel):
    channel: Literal["email", "outbox"] = Field(description="outbox: recorded, not sent (no SMTP).")
    status: str = Field(
        description="sent, outbox, or skipped (a guard stopped it; the step's note says why)."
    )
    recipient: str
    subject: str | None
    message_id: str | None
    sent_at: datetime | None
    duplicate: bool = Field(description="True when this try found the delivery done and sent nothing.")


def message_id_for(key: str, sender: str) -> str:
    """The same ``Message-ID`` on every try of one step, so a resent message is recognisable."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    domain = sender.rpartition("@")[2] or "localhost"
    return f"<{digest}@{domain}>"


def build_message(
    inp: DeliverInput, sender: str, message_id: str, key: str, headers: dict[str, str] | None = None
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = inp.to
    msg["Subject"] = inp.subject
    msg["Message-ID"] = message_id
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["X-Campaignflow-Key"] = key
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(inp.body)
    return msg


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
    done = ledger.find(db, key)
    if done is not None and done.status in ("sent", "outbox"):  # a redelivery: nothing to check again
        return _output(done, duplicate=True)
    why = ctx.guards.admit(inp.to, marketing=inp.marketing, timezone=inp.timezone)
    if why is not None:
        raise SkipStep(why, output=_skipped(inp, server).model_dump(mode="json"))
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
    wait = ctx.guards.domain_wait(inp.domain)
    if wait > 0:
        raise DeferredAgentError(
            f"receiving domain {inp.domain} is paused {wait:.1f}s more after deferring messages (SMTP 4xx)",
            retry_after=wait,
        )
    headers = ctx.guards.unsubscribe_headers(inp.to) if inp.marketing else {}
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
        send(server, build_message(inp, sender, message_id, key, headers))
    except SmtpDeferred as exc:
        ledger.mark(db, key, "failed")
        exc.retry_after = max(exc.retry_after, ctx.guards.deferred(inp.domain, str(exc)))
        raise
    except (TransientAgentError, PermanentAgentError) as exc:
        ledger.mark(db, key, "failed")
        if not exc.retryable:
            ctx.guards.release()
        if isinstance(exc, SmtpRefused) and exc.hard_bounce:
            ctx.guards.bounced(inp.to, str(exc))
        raise
    ctx.guards.delivered(inp.domain)
    return _output(ledger.mark(db, key, "sent", message_id=message_id), duplicate=False)


def _skipped(inp: DeliverInput, server: SmtpServer | None) -> DeliverOutput:
    return DeliverOutput(
        channel="email" if server else "outbox",
        status="skipped",
        recipient=inp.to,
        subject=inp.subject,
        message_id=None,
        sent_at=None,
        duplicate=False,
    )
