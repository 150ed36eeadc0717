"""A real SMTP server for the tests (aiosmtpd on 127.0.0.1) that keeps every message it accepts.

Recipients starting with ``bounce`` are refused for good (550), ``busy`` for now (451), ``closing``
with 421 (service closing); ``defer(address, n)`` answers 451 to that address's next ``n`` tries and
then accepts it; ``tries`` counts every RCPT per address. With
``credentials`` set, the server offers AUTH LOGIN/PLAIN over plain text (loopback only) and
requires it; with ``tls_context`` it offers and requires STARTTLS.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and its key), made with the openssl command."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    command = [
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-keyout", str(key), "-out", str(cert),
        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return cert, key


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        with self.sink.lock:
            self.sink.tries[address] = self.sink.tries.get(address, 0) + 1
            deferred = self.sink.deferrals.get(address, 0)
            if deferred:
                self.sink.deferrals[address] = deferred - 1
        if deferred:
            return "451 4.7.1 greylisted, try again later"
        if address.startswith("closing"):
            return "421 4.3.2 service not available, closing transmission channel"
        if address.startswith("bounce"):
            return "550 5.1.1 no such mailbox"
        if address.startswith("busy"):
            return "451 4.3.0 mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        with self.sink.lock:
            self.sink.messages.append(msg)
            self.sink.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 2.0.0 accepted"


class SmtpSink:
    def __init__(
        self,
        credentials: tuple[str, str] | None = None,
        port: int | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.credentials = credentials
        self.port = port or free_port()
        self.lock = threading.Lock()
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.logins: list[str] = []
        self.tries: dict[str, int] = {}
        self.deferrals: dict[str, int] = {}
        kwargs: dict[str, Any] = {}
        if credentials is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True, auth_require_tls=False)
        if tls_context is not None:
            kwargs.update(tls_context=tls_context, require_starttls=True)
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **kwargs)

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and (
                data.login.decode(),
                data.password.decode(),
            )
            == self.credentials
        )
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)

    def url(self, user: str | None = None, password: str | None = None, query: str = "") -> str:
        auth = f"{user}:{password}@" if user is not None else ""
        return f"smtp://{auth}127.0.0.1:{self.port}{'?' + query if query else ''}"

    def defer(self, address: str, times: int) -> None:
        """Answer 451 to ``address``'s next ``times`` tries, then accept it."""
        with self.lock:
            self.deferrals[address] = times

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if m["To"] == address]

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
