"""Every table of the store as a SQLAlchemy Core ``Table`` (the repositories write Core SQL), and the
one ``MetaData`` that holds them all: importing this module registers every model."""

from __future__ import annotations

from typing import cast

import sqlalchemy as sa

from orchestration.store.control_models import (
    Campaign,
    CampaignSlot,
    DeadLetter,
    Heartbeat,
    RejectedEvent,
    RoutingRule,
)
from orchestration.store.guard_models import (
    DomainBackoff,
    FrequencySlot,
    RecipientGuard,
    Suppression,
    SuppressionLog,
)
from orchestration.store.metadata import Base
from orchestration.store.models import IngestKey, OutboxEntry, Run, RunCounter, StepRecordRow
from orchestration.store.wait_models import RunSignal, RunTimer, RunWait

#: The store's tables (the agents keep theirs on their own ``MetaData``: ``agents.tables``).
metadata: sa.MetaData = Base.metadata


def _table(model: type[Base]) -> sa.Table:
    return cast(sa.Table, model.__table__)


run_t = _table(Run)
step_t = _table(StepRecordRow)
key_t = _table(IngestKey)
outbox_t = _table(OutboxEntry)
counter_t = _table(RunCounter)
rejected_t = _table(RejectedEvent)
dead_letter_t = _table(DeadLetter)
route_t = _table(RoutingRule)
campaign_t = _table(Campaign)
slot_t = _table(CampaignSlot)
heartbeat_t = _table(Heartbeat)
suppression_t = _table(Suppression)
suppression_log_t = _table(SuppressionLog)
frequency_slot_t = _table(FrequencySlot)
recipient_guard_t = _table(RecipientGuard)
domain_backoff_t = _table(DomainBackoff)
timer_t = _table(RunTimer)
wait_t = _table(RunWait)
signal_t = _table(RunSignal)
