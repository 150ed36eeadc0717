"""Suppression events: an unsubscribe, a hard bounce or a complaint puts the address on the
suppression list (through ``ctx.guards``), which every send checks first. A soft bounce does not:
its step is skipped with a note saying so."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from agents.context import AgentContext
from agents.delivery import single_address
from agents.errors import SkipStep

#: How providers spell a bounce that will not go away, and one that may.
HARD_BOUNCES = frozenset({"hard", "permanent"})
SOFT_BOUNCES = frozenset({"soft", "transient", "undetermined"})


class SuppressInput(BaseModel):
    email: str = Field(description="The address the event is about.")
    reason: Literal["unsubscribed", "bounced", "complained"]
    bounce_type: str | None = Field(
        None,
        description="For bounces: hard/permanent suppresses, soft/transient does not. Unset: read "
        "from smtp_code (5xx hard, 4xx soft), else hard.",
    )
    smtp_code: int | None = Field(None, ge=200, le=599, description="The reply code of the bounce, if known.")
    detail: str | None = Field(None, max_length=2000, description="Kept in the list's audit log.")

    @field_validator("email")
    @classmethod
    def _address(cls, value: str) -> str:
        return single_address(value)

    @field_validator("bounce_type")
    @classmethod
    def _bounce_type(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().lower()
        if value not in HARD_BOUNCES | SOFT_BOUNCES:
            known = ", ".join(sorted(HARD_BOUNCES | SOFT_BOUNCES))
            raise ValueError(f"unknown bounce type {value!r}; use one of {known}")
        return value

    @property
    def hard(self) -> bool:
        if self.bounce_type is not None:
            return self.bounce_type in HARD_BOUNCES
        return self.smtp_code is None or self.smtp_code >= 500


class SuppressOutput(BaseModel):
    email: str
    reason: str
    suppressed: bool = Field(description="The address is on the suppression list now.")
    added: bool = Field(description="This event put it there (False: it was already).")


def suppress(inp: SuppressInput, ctx: AgentContext) -> SuppressOutput:
    if inp.reason == "bounced" and not inp.hard:
        output = SuppressOutput(email=inp.email, reason=inp.reason, suppressed=False, added=False)
        code = f" ({inp.smtp_code})" if inp.smtp_code else ""
        raise SkipStep(f"soft bounce{code}: {inp.email} is not suppressed", output.model_dump(mode="json"))
    added = ctx.guards.suppress(inp.email, inp.reason, f"run:{ctx.run_id}", inp.detail)
    return SuppressOutput(email=inp.email, reason=inp.reason, suppressed=True, added=added)
