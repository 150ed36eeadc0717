"""CRM write: upsert a contact into the ``crm_contact`` table. Idempotent per idempotency key: a
redelivered step updates the row but does not count a second write."""

from __future__ import annotations

import os
import threading

import sqlalchemy as sa
from pydantic import BaseModel

from agents.context import AgentContext
from agents.errors import PermanentAgentError, TransientAgentError

_engines: dict[tuple[int, str], sa.Engine] = {}
_lock = threading.Lock()

UPSERT = sa.text(
    """
    INSERT INTO crm_contact (email, name, company, segment, score, last_write_key, writes, updated_at)
    VALUES (:email, :name, :company, :segment, :score, :key, 1, CURRENT_TIMESTAMP)
    ON CONFLICT (email) DO UPDATE SET
        name = COALESCE(excluded.name, crm_contact.name),
        company = COALESCE(excluded.company, crm_contact.company),
        segment = excluded.segment,
        score = excluded.score,
        writes = CASE WHEN crm_contact.last_write_key = excluded.last_write_key
                      THEN crm_contact.writes ELSE crm_contact.writes + 1 END,
        last_write_key = excluded.last_write_key,
        updated_at = CURRENT_TIMESTAMP
    RETURNING writes
    """
)


class CrmWriteInput(BaseModel):
    email: str
    name: str | None = None
    company: str | None = None
    segment: str | None = None
    points: int | None = None


class CrmWriteOutput(BaseModel):
    email: str
    created: bool
    writes: int


def _engine(url: str) -> sa.Engine:
    key = (os.getpid(), url)
    with _lock:
        if key not in _engines:
            _engines[key] = sa.create_engine(url, pool_pre_ping=True)
        return _engines[key]


def crm_write(inp: CrmWriteInput, ctx: AgentContext) -> CrmWriteOutput:
    url = ctx.config.get("database_url")
    if not url:
        raise PermanentAgentError("crm_write needs database_url in its context")
    params = {
        "email": inp.email,
        "name": inp.name,
        "company": inp.company,
        "segment": inp.segment,
        "score": inp.points,
        "key": ctx.idempotency_key,
    }
    try:
        with _engine(url).begin() as conn:
            writes = conn.execute(UPSERT, params).scalar_one()
    except sa.exc.OperationalError as exc:
        raise TransientAgentError(f"CRM database unavailable: {exc.orig}") from exc
    return CrmWriteOutput(email=inp.email, created=writes == 1, writes=writes)
