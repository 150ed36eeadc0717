"""Models of the control plane: rejected events, dead letters, routing rules, beat-scheduled campaigns
and their slots, and heartbeats (beat's last tick). The delivery ledger belongs to the agents
(``agents.tables``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from orchestration.store.metadata import Base, JSONType, server_now


class RejectedEvent(Base):
    """An event that could not become a run, kept with the reason and the raw body for replay.

    ``raw`` is the body as JSON text in which NUL characters and lone surrogates are escapes
    (``orchestration.store.jsontext``), so any body can be stored; ``raw_complete`` is false when
    it was cut (over the size limit, or nested too deeply). ``body_hash`` (SHA-256 of the whole
    text) finds the same body sent again."""

    __tablename__ = "rejected_event"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    event_id: Mapped[str | None] = mapped_column(sa.String(200), index=True)
    raw: Mapped[str] = mapped_column(sa.Text)
    raw_complete: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.true())
    body_hash: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    reason: Mapped[str] = mapped_column(sa.Text)
    problems: Mapped[Any] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(sa.String(16), server_default="rejected")
    replay_run_id: Mapped[str | None] = mapped_column(sa.String(36))
    created_at: Mapped[datetime] = mapped_column(server_default=server_now(), index=True)
    replayed_at: Mapped[datetime | None]


class DeadLetter(Base):
    """A message the workers could not process (undecodable, refused content type, unknown task,
    not a task message), kept as received: the raw body (bytes, capped), its headers (as safe JSON
    text) and the reason. ``fingerprint`` (SHA-256 of queue, content type and encoding, headers and
    the whole body) makes the same message seen again bump ``count`` and ``last_seen``."""

    __tablename__ = "dead_letter"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(sa.String(64), unique=True)
    queue: Mapped[str] = mapped_column(sa.String(200))
    task: Mapped[str | None] = mapped_column(sa.String(200))
    reason: Mapped[str] = mapped_column(sa.String(40))
    detail: Mapped[str] = mapped_column(sa.Text)
    headers: Mapped[str] = mapped_column(sa.Text)
    content_type: Mapped[str | None] = mapped_column(sa.String(200))
    content_encoding: Mapped[str | None] = mapped_column(sa.String(80))
    body: Mapped[bytes] = mapped_column(sa.LargeBinary)
    body_size: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"))
    count: Mapped[int] = mapped_column(sa.Integer, server_default="1")
    status: Mapped[str] = mapped_column(sa.String(16), server_default="dead")
    first_seen: Mapped[datetime] = mapped_column(server_default=server_now())
    last_seen: Mapped[datetime] = mapped_column(server_default=server_now(), index=True)
    replayed_at: Mapped[datetime | None]


#: At most one of orchestrator and flow; at least one of them or a resume signal (with its key).
TARGET_CHECK = (
    "(orchestrator IS NULL OR flow IS NULL) AND (resume_signal IS NULL) = (resume_key IS NULL) "
    "AND NOT (orchestrator IS NULL AND flow IS NULL AND resume_signal IS NULL)"
)


class RoutingRule(Base):
    """A routing rule kept in the database: events of ``event_type`` (and ``campaign``) go to an
    orchestrator or a named flow. Added at run time (``campaignflow routes add``), no restart."""

    __tablename__ = "routing_rule"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    event_type: Mapped[str] = mapped_column(sa.String(120), index=True)
    campaign: Mapped[str | None] = mapped_column(sa.String(120))
    orchestrator: Mapped[str | None] = mapped_column(sa.String(120))
    flow: Mapped[str | None] = mapped_column(sa.String(120))
    #: Resume the runs waiting for this signal whose correlation is the event's ``resume_key``
    #: (migration 0017); a rule may resume runs only, or start one too.
    resume_signal: Mapped[str | None] = mapped_column(sa.String(120))
    resume_key: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(server_default=server_now())

    __table_args__ = (
        sa.CheckConstraint(
            sa.text(TARGET_CHECK),
            name="target",
        ),
    )


class Campaign(Base):
    """A scheduled campaign: every slot of its schedule starts one run per audience member."""

    __tablename__ = "campaign"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120), unique=True)
    event_type: Mapped[str] = mapped_column(sa.String(120))
    schedule_kind: Mapped[str] = mapped_column(sa.String(16))
    every_seconds: Mapped[float | None] = mapped_column(sa.Float)
    cron: Mapped[str | None] = mapped_column(sa.String(120))
    timezone: Mapped[str] = mapped_column(sa.String(64), server_default="UTC")
    event_template: Mapped[Any] = mapped_column(JSONType)
    audience: Mapped[Any | None] = mapped_column(JSONType)
    enabled: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.true())
    max_catchup: Mapped[int] = mapped_column(sa.Integer, server_default="3")
    starts_at: Mapped[datetime | None]
    last_slot_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=server_now())
    updated_at: Mapped[datetime] = mapped_column(server_default=server_now())

    __table_args__ = (sa.CheckConstraint(sa.column("schedule_kind").in_(("interval", "cron")), name="kind"),)


class CampaignSlot(Base):
    """One due slot of a campaign; unique per (campaign, slot) so no slot starts twice."""

    __tablename__ = "campaign_slot"

    campaign_id: Mapped[int] = mapped_column(
        sa.ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True
    )
    slot_at: Mapped[datetime] = mapped_column(primary_key=True)
    runs: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    created_at: Mapped[datetime] = mapped_column(server_default=server_now())


class Heartbeat(Base):
    """Last time a periodic component (beat, the sweeper) did its work."""

    __tablename__ = "heartbeat"

    name: Mapped[str] = mapped_column(sa.String(80), primary_key=True)
    beat_at: Mapped[datetime] = mapped_column(server_default=server_now())
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
