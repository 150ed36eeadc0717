"""LLM call: a personalised message from an OpenAI-compatible chat endpoint, or from a template.

``POST {llm_base_url}/chat/completions`` with ``llm_model`` and, when set, ``Authorization: Bearer
{llm_api_key}`` (all three from the agent's context). Errors tell the engine what to do: a timeout,
a refused connection, 429 or 5xx raise :class:`TransientAgentError` (the step's retry policy tries
again); any other 4xx or an answer that is not a chat completion raises :class:`PermanentAgentError`.
With no ``llm_base_url``, or with ``llm: false`` (a flow's fallback when the endpoint is down), the
message comes from the deterministic template instead (``source: template``).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Literal

from pydantic import BaseModel, Field

from agents.context import AgentContext
from agents.errors import PermanentAgentError, TransientAgentError
from agents.templates import TEMPLATES, render

SYSTEM_PROMPT = (
    "You write short, friendly first-touch sales emails. Answer with the email only: the first line "
    "is 'Subject: <subject>', then a blank line, then the body (at most 120 words, plain text)."
)


class ComposeInput(BaseModel):
    email: str
    name: str | None = None
    title: str | None = None
    company: str | None = None
    segment: str | None = None
    points: int | None = None
    template: str = Field("hot_lead", description="Template used when no LLM endpoint is configured.")
    llm: bool = Field(
        True, description="Ask the LLM endpoint when one is configured; false: the template, always."
    )
    instructions: str | None = Field(None, description="Extra guidance for the model.")
    timeout_seconds: float = Field(20.0, gt=0, le=300, description="Per-request HTTP timeout.")
    max_tokens: int = Field(400, ge=16, le=4000)


class ComposeOutput(BaseModel):
    subject: str
    body: str
    source: Literal["llm", "template"]
    model: str | None = None


def chat_completion(
    base_url: str,
    messages: list[dict[str, str]],
    *,
    model: str,
    api_key: str | None,
    timeout: float,
    max_tokens: int,
) -> str:
    """One request; the text of the first choice, or an agent error that says whether to retry."""
    url = base_url.rstrip("/") + "/chat/completions"
    body = json.dumps({"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0.4})
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode("utf-8", "replace")
        if exc.code == 429 or exc.code >= 500:
            retry_after = exc.headers.get("Retry-After")
            hint = f" (Retry-After: {retry_after})" if retry_after else ""
            raise TransientAgentError(f"LLM endpoint {url} answered {exc.code}{hint}: {detail}") from None
        raise PermanentAgentError(
            f"LLM endpoint {url} answered {exc.code}: {detail}; check CAMPAIGNFLOW_LLM_BASE_URL, "
            "CAMPAIGNFLOW_LLM_API_KEY and CAMPAIGNFLOW_LLM_MODEL"
        ) from None
    except TimeoutError as exc:
        raise TransientAgentError(f"LLM endpoint {url} timed out after {timeout}s") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise TransientAgentError(f"LLM endpoint {url} timed out after {timeout}s") from exc
        raise TransientAgentError(f"LLM endpoint {url} unreachable: {exc.reason}") from exc
    except (ConnectionError, OSError) as exc:
        raise TransientAgentError(f"LLM endpoint {url} connection failed: {exc}") from exc
    return _content(raw, url)


def _content(raw: bytes, url: str) -> str:
    try:
        data: Any = json.loads(raw)
        content = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise PermanentAgentError(
            f"LLM endpoint {url} did not answer with a chat completion (choices[0].message.content): "
            f"{raw[:200]!r}; check CAMPAIGNFLOW_LLM_BASE_URL"
        ) from None
    if not isinstance(content, str) or not content.strip():
        raise PermanentAgentError(f"LLM endpoint {url} answered an empty message")
    return content.strip()


def split_subject(text: str, default_subject: str) -> tuple[str, str]:
    """``Subject: ...`` on the first line becomes the subject; otherwise ``default_subject``."""
    first, _, rest = text.partition("\n")
    if first.lower().startswith("subject:"):
        subject = first.split(":", 1)[1].strip()
        return (subject or default_subject), rest.strip() + "\n"
    return default_subject, text.strip() + "\n"


def _prompt(inp: ComposeInput) -> str:
    facts = {
        "name": inp.name,
        "job title": inp.title,
        "company": inp.company,
        "lead segment": inp.segment,
        "lead score": inp.points,
    }
    lines = [f"- {k}: {v}" for k, v in facts.items() if v not in (None, "")]
    extra = f"\n{inp.instructions}" if inp.instructions else ""
    return "Write a first-touch email to this lead:\n" + "\n".join(lines) + extra


def compose(inp: ComposeInput, ctx: AgentContext) -> ComposeOutput:
    if inp.template not in TEMPLATES:
        known = ", ".join(sorted(TEMPLATES))
        raise PermanentAgentError(f"template: unknown template {inp.template!r} (known: {known})")
    values = {"name": inp.name, "title": inp.title, "company": inp.company, "email": inp.email}
    subject, body = render(TEMPLATES[inp.template], values, name=inp.template)
    base_url = ctx.config.get("llm_base_url")
    if not base_url or not inp.llm:
        return ComposeOutput(subject=subject, body=body, source="template")
    model = ctx.config.get("llm_model") or "gpt-4o-mini"
    text = chat_completion(
        base_url,
        [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": _prompt(inp)}],
        model=model,
        api_key=ctx.config.get("llm_api_key"),
        timeout=inp.timeout_seconds,
        max_tokens=inp.max_tokens,
    )
    llm_subject, llm_body = split_subject(text, subject)
    return ComposeOutput(subject=llm_subject, body=llm_body, source="llm", model=model)
