"""Agents that exist only for the tests (loaded through CAMPAIGNFLOW_PLUGINS): they record every
call in Redis so a test can count side effects across threads and processes."""

from __future__ import annotations

import functools
import json
import os
import time

import redis
from pydantic import BaseModel, ConfigDict, SecretStr

from agents.context import AgentContext
from agents.errors import TransientAgentError
from agents.utility import SleepInput, SleepOutput
from agents.utility import sleep as sleep_agent
from orchestration.engine.permits import granted_at
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


class CrashInput(BaseModel):
    crash_attempts: int = 1_000_000
    exit_code: int = 13
    signal: int | None = None


class CrashOutput(BaseModel):
    attempt: int


def crash(inp: CrashInput, ctx: AgentContext) -> CrashOutput:
    """Ends its own process on purpose in its first ``crash_attempts`` tries: ``os._exit(exit_code)``,
    or ``signal`` sent to itself (11: a segfault), as a crashing native library or the OOM killer
    would. Counts its calls in the ledger."""
    ledger().incr(f"calls:{ctx.idempotency_key}")
    if ctx.attempt <= inp.crash_attempts:
        if inp.signal is not None:
            os.kill(os.getpid(), inp.signal)
        os._exit(inp.exit_code)
    return CrashOutput(attempt=ctx.attempt)


class Account(BaseModel):
    login: str
    password: SecretStr


class SecretInput(BaseModel):
    """Declares secret fields: the record keeps them masked, the agent gets their values."""

    user: str
    token: SecretStr
    account: Account | None = None
    region: str = "eu"


class SecretOutput(BaseModel):
    user: str
    token_length: int
    password_length: int


def secret_echo(inp: SecretInput, ctx: AgentContext) -> SecretOutput:
    password = inp.account.password.get_secret_value() if inp.account else ""
    return SecretOutput(
        user=inp.user, token_length=len(inp.token.get_secret_value()), password_length=len(password)
    )


class GateInput(BaseModel):
    label: str
    timeout: float = 30.0


class GateOutput(BaseModel):
    label: str


def gate(inp: GateInput, ctx: AgentContext) -> GateOutput:
    """Holds its try open until the test sets ``gate:<run_id>:<step_id>`` in the ledger (or
    ``timeout`` passes), so a test can look at a running step without timing it."""
    end = time.monotonic() + inp.timeout
    while not ledger().exists(f"gate:{ctx.idempotency_key}") and time.monotonic() < end:
        time.sleep(0.02)
    return GateOutput(label=inp.label)


class LimitedInput(BaseModel):
    model_config = ConfigDict(extra="allow")
    tag: str
    sleep: float = 0.0


class LimitedOutput(BaseModel):
    tag: str


def limited(inp: LimitedInput, ctx: AgentContext) -> LimitedOutput:
    """Records when its try started and ended (``limited:<tag>`` in the ledger, JSON), and while
    it runs which process runs it (``limited-pid:<tag>:<step_id>``), for the cluster-wide limits."""
    start = time.time()
    ledger().set(f"limited-pid:{inp.tag}:{ctx.step_id}", os.getpid())
    if inp.sleep:
        time.sleep(inp.sleep)
    key = (inp.model_extra or {}).get("tenant")
    span = {
        "s": start,
        "e": time.time(),
        "granted": granted_at(),
        "step": ctx.step_id,
        "key": key,
        "pid": os.getpid(),
    }
    ledger().rpush(f"limited:{inp.tag}", json.dumps(span))
    return LimitedOutput(tag=inp.tag)


#: The agent the cluster-wide limit tests hold to 3 at once and 20 a second, served by real
#: ``celery worker`` processes on the isolated queue.
LIMITED_AGENT = "limited_isolated"


#: The agents only the tests use.
TEST_AGENTS = (
    AgentSpec(
        name="secret_echo",
        handler=secret_echo,
        input_model=SecretInput,
        output_model=SecretOutput,
        pool="utility",
        retry=RetryPolicy(max_attempts=1),
    ),
    AgentSpec(
        name="gate",
        handler=gate,
        input_model=GateInput,
        output_model=GateOutput,
        pool="utility",
        soft_time_limit=40,
        time_limit=50,
        retry=RetryPolicy(max_attempts=1),
    ),
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
        name="crash_isolated",
        handler=crash,
        input_model=CrashInput,
        output_model=CrashOutput,
        pool="isolated",
        soft_time_limit=20,
        time_limit=30,
        retry=RetryPolicy(max_attempts=3, backoff_seconds=0.05, jitter=False),
    ),
    AgentSpec(
        name=LIMITED_AGENT,
        handler=limited,
        input_model=LimitedInput,
        output_model=LimitedOutput,
        pool="isolated",
        global_concurrency=3,
        global_rate_limit="20/s",
        soft_time_limit=20,
        time_limit=30,
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
