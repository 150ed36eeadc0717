"""The built-in agents, described once. Queues, routes, worker pools and limits all derive from here.

``bootstrap`` calls :func:`register` (this module is the default of ``CAMPAIGNFLOW_AGENT_MODULES``).
"""

from __future__ import annotations

from agents import crm, delivery, enrichment, llm, nurture, scoring, suppression, templates, utility
from orchestration.flows.retry import RetryPolicy
from orchestration.registry import AgentSpec, Registry

BUILTIN_AGENTS = (
    AgentSpec(
        name="enrich",
        handler=enrichment.enrich,
        input_model=enrichment.EnrichInput,
        output_model=enrichment.EnrichOutput,
        pool="enrichment",
        concurrency=4,
        soft_time_limit=20,
        time_limit=30,
        description="Company, role and seniority from email and title.",
    ),
    AgentSpec(
        name="score",
        handler=scoring.score,
        input_model=scoring.ScoreInput,
        output_model=scoring.ScoreOutput,
        pool="scoring",
        concurrency=4,
        soft_time_limit=10,
        time_limit=20,
        description="Transparent points model: hot, warm or cold.",
    ),
    AgentSpec(
        name="crm_write",
        handler=crm.crm_write,
        input_model=crm.CrmWriteInput,
        output_model=crm.CrmWriteOutput,
        pool="crm",
        concurrency=2,
        side_effects=True,
        retry=RetryPolicy(max_attempts=5, backoff_seconds=1, backoff_max_seconds=30),
        description="Upsert the contact into the CRM table, once per run step.",
    ),
    AgentSpec(
        name="noop",
        handler=utility.noop,
        input_model=utility.NoopInput,
        output_model=utility.NoopOutput,
        pool="utility",
        concurrency=4,
        description="Does nothing; echoes extra input (benchmarks, tests).",
    ),
    AgentSpec(
        name="sleep",
        handler=utility.sleep,
        input_model=utility.SleepInput,
        output_model=utility.SleepOutput,
        pool="utility",
        concurrency=4,
        description="Waits.",
    ),
    AgentSpec(
        name="fail",
        handler=utility.fail,
        input_model=utility.FailInput,
        output_model=utility.FailOutput,
        pool="utility",
        concurrency=4,
        retry=RetryPolicy(max_attempts=3, backoff_seconds=0.05, jitter=False),
        description="Fails its first N tries on purpose (examples of retries and errors).",
    ),
    AgentSpec(
        name="render_template",
        handler=templates.render_template,
        input_model=templates.RenderInput,
        output_model=templates.RenderOutput,
        pool="content",
        concurrency=4,
        soft_time_limit=10,
        time_limit=20,
        description="Fill a named or inline message template ($placeholders) from vars.",
    ),
    AgentSpec(
        name="compose_message",
        handler=llm.compose,
        input_model=llm.ComposeInput,
        output_model=llm.ComposeOutput,
        pool="llm",
        concurrency=4,
        soft_time_limit=45,
        time_limit=60,
        retry=RetryPolicy(max_attempts=4, backoff_seconds=0.5, backoff_max_seconds=20),
        description="Personalised message from the OpenAI-compatible endpoint (template without one).",
    ),
    AgentSpec(
        name="deliver_email",
        handler=delivery.deliver_email,
        input_model=delivery.DeliverInput,
        output_model=delivery.DeliverOutput,
        pool="delivery",
        concurrency=2,
        # Celery rate limits are per worker: N delivery workers send at most N x 10 messages/s.
        rate_limit="10/s",
        side_effects=True,
        soft_time_limit=45,
        time_limit=60,  # below delivery.SEND_LEASE_SECONDS, so a stale claim is a dead try
        retry=RetryPolicy(max_attempts=5, backoff_seconds=1, backoff_max_seconds=30),
        description="Send one email over SMTP, once per run step (delivery ledger); outbox without SMTP.",
    ),
    AgentSpec(
        name="suppress",
        handler=suppression.suppress,
        input_model=suppression.SuppressInput,
        output_model=suppression.SuppressOutput,
        pool="crm",
        concurrency=2,
        side_effects=True,
        retry=RetryPolicy(max_attempts=5, backoff_seconds=1, backoff_max_seconds=30),
        description="Put an address on the suppression list (unsubscribe, hard bounce, complaint).",
    ),
    AgentSpec(
        name="nurture_add",
        handler=nurture.nurture_add,
        input_model=nurture.NurtureInput,
        output_model=nurture.NurtureOutput,
        pool="crm",
        concurrency=2,
        side_effects=True,
        retry=RetryPolicy(max_attempts=5, backoff_seconds=1, backoff_max_seconds=30),
        description="Put a lead on a nurture list (once per list and email).",
    ),
)


def register(registry: Registry) -> None:
    """Declare the built-in agents (``bootstrap`` calls this; a second call changes nothing)."""
    for spec in BUILTIN_AGENTS:
        if spec.name not in registry.agent_names():
            registry.add_agent(spec)
