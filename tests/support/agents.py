"""Agents that exist only for the tests (loaded through CAMPAIGNFLOW_PLUGINS): they record every
call in Redis so a test can count side effects across threads and processes."""

from __future__ import annotations

import os
import time

import redis
from pydantic import BaseModel, ConfigDict

from agents.context import AgentContext
from agents.errors import TransientAgentError
from orchestration.registry import AgentSpec, RetryPolicy, registry

_LEDGER_DB = int(os.environ.get("TEST_LEDGER_DB", "13"))


def ledger() -> redis.Redis:
    return redis.Redis(host=os.environ.get("TEST_REDIS_HOST", "127.0.0.1"), db=_LEDGER_DB)


class EffectInput(BaseModel):
    model_config = ConfigDict(extra="allow")
    sleep: float = 0.0
    fail_first: int = 0


class EffectOutput(BaseModel):
    key: str
    effects: int


def effect(inp: EffectInput, ctx: AgentContext) -> EffectOutput:
    """A side effect guarded by the idempotency key: counts calls and effects separately."""
    ledger().incr(f"calls:{ctx.idempotency_key}")
    if inp.sleep:
        time.sleep(inp.sleep)
    if ctx.attempt <= inp.fail_first:
        raise TransientAgentError(f"flaky (attempt {ctx.attempt})")
    first = ledger().set(f"effect:{ctx.idempotency_key}", "1", nx=True)
    if first:
        ledger().incr(f"effects:{ctx.run_id}")
    return EffectOutput(key=ctx.idempotency_key, effects=int(ledger().get(f"effects:{ctx.run_id}") or 0))


for _spec in (
    AgentSpec(
        name="effect",
        handler=effect,
        input_model=EffectInput,
        output_model=EffectOutput,
        pool="utility",
        side_effects=True,
        soft_time_limit=20,
        time_limit=30,
        retry=RetryPolicy(max_attempts=3, backoff_seconds=0.05, jitter=False),
    ),
):
    if _spec.name not in registry.agent_names():
        registry.add_agent(_spec)
