"""Models of the sending guards: the suppression list and its audit log, the frequency-cap slots
(one per message counted, with the recipient's local day), the per-recipient guard row the caps
lock, and the per-domain backoff of receiving domains that defer (SMTP 4xx)."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from orchestration.store.metadata import Base, server_now

BIG_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
#: Why an address is suppressed.
SUPPRESSION_REASONS = ("unsubscribed", "bounced", "complained", "manual")


class Suppression(Base):
    """An address that is not sent to: ``reason`` (one of :data:`SUPPRESSION_REASONS`), where it
    came from (``source``: ``event:<id>``, ``smtp:<run>:<step>``, ``cli``, ``one-click``) and why."""

    __tablename__ = "suppression"

    address: Mapped[str] = mapped_column(sa.String(320), primary_key=True)
    reason: Mapped[str] = mapped_column(sa.String(16))
    source: Mapped[str] = mapped_column(sa.String(240))
    detail: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(server_default=server_now())

    __table_args__ = (sa.CheckConstraint(sa.column("reason").in_(SUPPRESSION_REASONS), name="reason"),)


class SuppressionLog(Base):
    """Every change of the suppression list (``add``, ``remove``), kept when the entry goes."""

    __tablename__ = "suppression_log"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    address: Mapped[str] = mapped_column(sa.String(320), index=True)
    action: Mapped[str] = mapped_column(sa.String(8))
    reason: Mapped[str | None] = mapped_column(sa.String(16))
    source: Mapped[str] = mapped_column(sa.String(240))
    detail: Mapped[str | None] = mapped_column(sa.Text)
    at: Mapped[datetime] = mapped_column(server_default=server_now())


class FrequencySlot(Base):
    """One marketing message counted against its recipient's caps, keyed by the step's idempotency
    key (a retried or redelivered send is counted once), on the recipient's local calendar day."""

    __tablename__ = "frequency_slot"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(240), unique=True)
    recipient: Mapped[str] = mapped_column(sa.String(320))
    campaign: Mapped[str | None] = mapped_column(sa.String(120))
    local_day: Mapped[date] = mapped_column(sa.Date)
    created_at: Mapped[datetime] = mapped_column(server_default=server_now())

    __table_args__ = (sa.Index("ix_frequency_slot__recipient_day", "recipient", "local_day"),)


class RecipientGuard(Base):
    """One row per recipient ever counted: a cap check locks it (its row lock on Postgres, the write
    lock on SQLite) so concurrent sends to one recipient count one after the other."""

    __tablename__ = "recipient_guard"

    recipient: Mapped[str] = mapped_column(sa.String(320), primary_key=True)
    checked_at: Mapped[datetime] = mapped_column(server_default=server_now())


class DomainBackoff(Base):
    """A receiving domain that deferred messages: ``strikes`` deferrals not yet recovered by a
    success, and the pause they earned (no send to it before ``paused_until``)."""

    __tablename__ = "domain_backoff"

    domain: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    strikes: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    paused_until: Mapped[datetime | None]
    last_reply: Mapped[str | None] = mapped_column(sa.Text)
    updated_at: Mapped[datetime] = mapped_column(server_default=server_now())
