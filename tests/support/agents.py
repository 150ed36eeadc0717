"""Agents that exist only for the tests (loaded through CAMPAIGNFLOW_PLUGINS): they record every
call in Redis so a test can count side effects across threads and processes."""

from __future__ import annotations

import functools
import time

import redis
from pydantic import BaseModel, ConfigDict

from agents.context import AgentContext
from agents.errors import TransientAgentError
from agents.utility import SleepInput, SleepOutput
from agents.utility import sleep as sleep_agent
from orchestration.flows.retry import RetryPolicy
from orchestration.registry import AgentSpec, Registry
from tests.support import testenv


@functools.cache
def ledger() -> redis.Redis:
    """One client per process (thread-safe; redis-py reconnects after a fork)."""
    return redis.Redis(host=testenv.REDIS_HOST, port=testenv.REDIS_PORT, db=testenv.LEDGER_REDIS_DB)


#: Served only by `celery worker` subprocesses that the crash and time-limit tests start and kill.
ISOLATED_QUEUE = "agents.isolated"


class EffectInput(BaseModel):
    model_config = ConfigDict(extra="allow")
    sleep: float = 0.0
    sleep_after: float = 0.0
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
    if inp.sleep_after:  # the effect happened; a crash now loses only the ack
        time.sleep(inp.sleep_after)
    return EffectOutput(key=ctx.idempotency_key, effects=int(ledger().get(f"effects:{ctx.run_id}") or 0))


class StubbornInput(BaseModel):
    seconds: float


def stubborn(inp: StubbornInput, ctx: AgentContext) -> EffectOutput:
    """Sleeps and swallows the soft time limit, so only the hard limit can stop it."""
    end = time.monotonic() + inp.seconds
    while time.monotonic() < end:
        try:
            time.sleep(0.05)
        except Exception:  # the soft time limit arrives as an exception here
            continue
    return EffectOutput(key=ctx.idempotency_key, effects=0)


#: The agents only the tests use.
TEST_AGENTS = (
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
    AgentSpec(
        name="effect_isolated",
        handler=effect,
        input_model=EffectInput,
        output_model=EffectOutput,
        pool="isolated",
        side_effects=True,
        soft_time_limit=20,
        time_limit=30,
        retry=RetryPolicy(max_attempts=3, backoff_seconds=0.05, jitter=False),
    ),
    AgentSpec(
        name="sleep_isolated",
        handler=sleep_agent,
        input_model=SleepInput,
        output_model=SleepOutput,
        pool="isolated",
        soft_time_limit=20,
        time_limit=30,
        retry=RetryPolicy(max_attempts=2, backoff_seconds=0.05, jitter=False),
    ),
    AgentSpec(
        name="stubborn_isolated",
        handler=stubborn,
        input_model=StubbornInput,
        output_model=EffectOutput,
        pool="isolated",
        soft_time_limit=1,
        time_limit=2,
    ),
)


def register(registry: Registry) -> None:
    """Plugin hook (``CAMPAIGNFLOW_PLUGINS=tests.support.agents``): declare the test agents once."""
    for spec in TEST_AGENTS:
        if spec.name not in registry.agent_names():
            registry.add_agent(spec)
