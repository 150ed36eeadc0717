"""The delivery ledger (table ``delivery``): one row per idempotency key, claimed before a message
leaves and marked after. Plain SQLAlchemy Core on the run store's database; Postgres and SQLite.
The table is defined in ``agents.tables``.

Row states: ``sending`` (claimed, the send may be in flight), ``sent`` (the server accepted it),
``failed`` (the send failed before the server accepted it; a later try may claim the row again),
``outbox`` (recorded, not sent: no SMTP server configured), ``listed`` (a list membership, such as
the nurture list).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from agents.errors import PermanentAgentError, TransientAgentError
from agents.tables import delivery

_engines: dict[tuple[int, str], sa.Engine] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Entry:
    key: str
    run_id: str | None
    channel: str
    recipient: str
    subject: str | None
    status: str
    message_id: str | None
    claimed_at: datetime | None
    sent_at: datetime | None


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming a key: ``owned`` means this try must do the work."""

    owned: bool
    entry: Entry


def engine(url: str | None) -> sa.Engine:
    if not url:
        raise PermanentAgentError("the delivery ledger needs database_url in the agent's context")
    key = (os.getpid(), url)
    with _lock:
        if key not in _engines:
            kwargs: dict[str, Any] = {"pool_pre_ping": True}
            if url.startswith("sqlite"):
                kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            _engines[key] = sa.create_engine(url, **kwargs)
        return _engines[key]


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _insert(conn: sa.Connection) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(delivery)


def _entry(row: sa.Row[Any]) -> Entry:
    return Entry(
        key=row.idempotency_key,
        run_id=row.run_id,
        channel=row.channel,
        recipient=row.recipient,
        subject=row.subject,
        status=row.status,
        message_id=row.provider_message_id,
        claimed_at=_aware(row.created_at),
        sent_at=_aware(row.sent_at),
    )


def get(conn: sa.Connection, key: str) -> Entry | None:
    row = conn.execute(sa.select(delivery).where(delivery.c.idempotency_key == key)).first()
    return None if row is None else _entry(row)


def find(url: str | None, key: str) -> Entry | None:
    """The row of ``key``, if any."""
    try:
        with engine(url).connect() as conn:
            return get(conn, key)
    except sa.exc.OperationalError as exc:
        raise TransientAgentError(f"delivery ledger unavailable: {exc.orig}") from exc


def claim(
    url: str | None,
    *,
    key: str,
    run_id: str | None,
    channel: str,
    recipient: str,
    subject: str | None,
    status: str = "sending",
    message_id: str | None = None,
    lease_seconds: float = 0.0,
) -> Claim:
    """Insert the row for ``key`` with ``status`` unless it exists (``ON CONFLICT DO NOTHING``).

    When it exists, this try still owns it if the row is ``failed`` or is a ``sending`` claim older
    than ``lease_seconds`` (the try that made it died mid-send); the takeover is one conditional
    UPDATE, so two concurrent tries never both own a key.
    """
    now = _now()
    values = {
        "idempotency_key": key,
        "run_id": run_id,
        "channel": channel,
        "recipient": recipient,
        "subject": subject,
        "status": status,
        "provider_message_id": message_id,
        "created_at": now,
    }
    try:
        with engine(url).begin() as conn:
            stmt = (
                _insert(conn)
                .values(values)
                .on_conflict_do_nothing(index_elements=["idempotency_key"])
                .returning(delivery.c.id)
            )
            if conn.execute(stmt).first() is not None:
                return Claim(True, _must_get(conn, key))
            taken = conn.execute(
                delivery.update()
                .where(
                    delivery.c.idempotency_key == key,
                    sa.or_(
                        delivery.c.status == "failed",
                        sa.and_(
                            delivery.c.status == "sending",
                            delivery.c.created_at < now - timedelta(seconds=lease_seconds),
                        ),
                    ),
                )
                .values(status=status, created_at=now, channel=channel, recipient=recipient, subject=subject)
            ).rowcount
            return Claim(taken == 1, _must_get(conn, key))
    except sa.exc.OperationalError as exc:
        raise TransientAgentError(f"delivery ledger unavailable: {exc.orig}") from exc


def _must_get(conn: sa.Connection, key: str) -> Entry:
    entry = get(conn, key)
    assert entry is not None, key
    return entry


def mark(url: str | None, key: str, status: str, *, message_id: str | None = None) -> Entry:
    """Record how the claimed send ended: ``sent`` (with the time) or ``failed``."""
    values: dict[str, Any] = {"status": status}
    if message_id is not None:
        values["provider_message_id"] = message_id
    if status == "sent":
        values["sent_at"] = _now()
    try:
        with engine(url).begin() as conn:
            conn.execute(delivery.update().where(delivery.c.idempotency_key == key).values(values))
            return _must_get(conn, key)
    except sa.exc.OperationalError as exc:
        raise TransientAgentError(f"delivery ledger unavailable: {exc.orig}") from exc
