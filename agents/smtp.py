"""One SMTP conversation: the server from ``CAMPAIGNFLOW_SMTP_URL``
(``smtp://[user:password@]host:port[?starttls=1&from=sender@example.com]``, ``smtps://`` for TLS from
the first byte) and the send, whose errors say what the reply means: a 4xx is a deferral
(:class:`SmtpDeferred`, try later), a 5xx a refusal (:class:`SmtpRefused`, permanent; a hard bounce
when it refuses the recipient as unknown)."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from agents.errors import DeferredAgentError, PermanentAgentError, TransientAgentError

SMTP_TIMEOUT_SECONDS = 20.0
DEFAULT_SENDER = "campaignflow@localhost"
_TRUE = {"1", "true", "yes", "on"}
#: Replies refusing a recipient that mean the address does not exist: a hard bounce.
HARD_BOUNCE_CODES = frozenset({550, 551, 553})


class SmtpDeferred(DeferredAgentError):
    """Raised when the server answered 4xx: try again later (``code`` is its reply code)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class SmtpRefused(PermanentAgentError):
    """Raised when the server answered 5xx; ``recipient``: it refused the recipient (RCPT or DATA)."""

    def __init__(self, message: str, code: int, *, recipient: bool) -> None:
        super().__init__(message)
        self.code = code
        self.recipient = recipient

    @property
    def hard_bounce(self) -> bool:
        return self.recipient and self.code in HARD_BOUNCE_CODES


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
        code = max(c for c, _ in exc.recipients.values())
        text = f"{where} refused recipient {msg['To']}: {exc.recipients}"
        if code < 500:
            raise SmtpDeferred(text, code) from None
        raise SmtpRefused(text, code, recipient=True) from None
    except smtplib.SMTPResponseException as exc:
        text = f"{where} answered {exc.smtp_code}: {exc.smtp_error!r}"
        if exc.smtp_code < 500:
            raise SmtpDeferred(text, exc.smtp_code) from None
        raise SmtpRefused(text, exc.smtp_code, recipient=isinstance(exc, smtplib.SMTPDataError)) from None
    except ssl.SSLCertVerificationError as exc:
        raise PermanentAgentError(f"{where}: TLS certificate not trusted ({exc.verify_message})") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise TransientAgentError(f"{where} unavailable: {type(exc).__name__}: {exc}") from exc
