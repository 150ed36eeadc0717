"""Small agents for benchmarks, examples and tests: do nothing, wait, or fail on purpose."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict

from agents.context import AgentContext
from agents.errors import PermanentAgentError, TransientAgentError


class NoopInput(BaseModel):
    model_config = ConfigDict(extra="allow")


class NoopOutput(BaseModel):
    model_config = ConfigDict(extra="allow")
    ok: bool = True


def noop(inp: NoopInput, ctx: AgentContext) -> NoopOutput:
    return NoopOutput(ok=True, **{"echo": inp.model_extra} if inp.model_extra else {})


class SleepInput(BaseModel):
    seconds: float = 0.1


class SleepOutput(BaseModel):
    slept: float


def sleep(inp: SleepInput, ctx: AgentContext) -> SleepOutput:
    time.sleep(inp.seconds)
    return SleepOutput(slept=inp.seconds)


class FailInput(BaseModel):
    message: str = "failing on purpose"
    permanent: bool = False
    fail_attempts: int = 1_000_000


class FailOutput(BaseModel):
    attempt: int


def fail(inp: FailInput, ctx: AgentContext) -> FailOutput:
    """Fails its first ``fail_attempts`` tries, then succeeds."""
    if ctx.attempt <= inp.fail_attempts:
        error: type[Exception] = PermanentAgentError if inp.permanent else TransientAgentError
        raise error(f"{inp.message} (attempt {ctx.attempt})")
    return FailOutput(attempt=ctx.attempt)
