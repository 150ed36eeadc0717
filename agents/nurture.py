"""Nurture list: leads that are not ready for sales get a slower sequence of messages later.

Membership is a row of the delivery ledger with channel ``nurture`` and status ``listed``, keyed by
``nurture:<list>:<email>``: a lead is on a list once, however many runs or redeliveries add it, and
the first run that added it is kept. The campaign that sends the sequence reads these rows.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from agents import ledger
from agents.context import AgentContext

LIST_CHANNEL = "nurture"


class NurtureInput(BaseModel):
    email: str
    list: str = Field("nurture", pattern=r"^[a-z][a-z0-9_\-]{0,60}$", description="Name of the list.")
    reason: str | None = Field(None, max_length=400, description="Why the lead is on the list.")

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        value = value.strip().lower()
        if "@" not in value:
            raise ValueError(f"not an email address: {value!r}")
        return value


class NurtureOutput(BaseModel):
    email: str
    list: str
    added: bool = Field(description="False when an earlier run had already put the lead on the list.")
    added_by_run: str | None


def membership_key(list_name: str, email: str) -> str:
    return f"{LIST_CHANNEL}:{list_name}:{email}"


def nurture_add(inp: NurtureInput, ctx: AgentContext) -> NurtureOutput:
    entry = ledger.claim(
        ctx.config.get("database_url"),
        key=membership_key(inp.list, inp.email),
        run_id=ctx.run_id,
        channel=LIST_CHANNEL,
        recipient=inp.email,
        subject=inp.reason or inp.list,
        status="listed",
    ).entry
    return NurtureOutput(
        email=inp.email,
        list=inp.list,
        added=entry.run_id == ctx.run_id,  # this run added it (this try or one redelivered)
        added_by_run=entry.run_id,
    )
