"""The LLM compose agent against a small local OpenAI-compatible server, and its template fallback."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from agents.errors import PermanentAgentError, TransientAgentError
from agents.llm import ComposeInput, compose
from agents.templates import RenderInput, render_template
from orchestration.engine.context import StepContext
from tests.support.llm_server import FakeLLM

LEAD = ComposeInput(
    email="ada@acme-robotics.com", name="Ada", title="VP Marketing", company="Acme Robotics", segment="hot"
)


def ctx(base_url: str | None, api_key: str | None = "sk-test") -> StepContext:
    config = {"llm_base_url": base_url, "llm_api_key": api_key, "llm_model": "tiny-model"}
    return StepContext(str(uuid.uuid4()), "compose", 1, config)


def test_template_fallback_without_endpoint_is_deterministic() -> None:
    first = compose(LEAD, ctx(None))
    second = compose(LEAD, ctx(None))
    assert first == second
    assert (first.source, first.model) == ("template", None)
    assert first.subject == "Acme Robotics and campaignflow: a next step"
    assert first.body.startswith("Hi Ada,")
    assert "As VP Marketing at Acme Robotics" in first.body
    bare = compose(ComposeInput(email="x@y.com"), ctx(None))
    assert bare.body.startswith("Hi there,")
    assert "your team" in bare.subject


def test_chat_completion_request_and_answer() -> None:
    with FakeLLM(["Subject: Robots that follow up\n\nHi Ada, quick idea for Acme."]) as llm:
        out = compose(LEAD.model_copy(update={"instructions": "Mention robots."}), ctx(llm.base_url))
    assert (out.source, out.model) == ("llm", "tiny-model")
    assert out.subject == "Robots that follow up"
    assert out.body == "Hi Ada, quick idea for Acme.\n"
    [request] = llm.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-test"
    body = request["json"]
    assert body["model"] == "tiny-model"
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "company: Acme Robotics" in body["messages"][1]["content"]
    assert "Mention robots." in body["messages"][1]["content"]


def test_answer_without_subject_line_keeps_the_template_subject() -> None:
    with FakeLLM(["Hi Ada, just a body."]) as llm:
        out = compose(LEAD, ctx(llm.base_url, api_key=None))
    assert out.subject == "Acme Robotics and campaignflow: a next step"
    assert out.body == "Hi Ada, just a body.\n"
    assert "Authorization" not in llm.requests[0]["headers"]


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (429, TransientAgentError, "answered 429 .Retry-After: 1."),
        (503, TransientAgentError, "answered 503"),
        (401, PermanentAgentError, "answered 401.*CAMPAIGNFLOW_LLM_API_KEY"),
        (404, PermanentAgentError, "answered 404"),
        ("", PermanentAgentError, "empty message"),
    ],
)
def test_errors_say_whether_to_retry(answer: int | str, error: type, message: str) -> None:
    with FakeLLM([answer]) as llm, pytest.raises(error, match=message):
        compose(LEAD, ctx(llm.base_url))
    assert len(llm.requests) == 1


def test_not_a_chat_completion_is_permanent() -> None:
    llm = FakeLLM([{"result": "not the chat completions API"}])
    with llm, pytest.raises(PermanentAgentError, match="did not answer with a chat completion"):
        compose(LEAD, ctx(llm.base_url))
    assert len(llm.requests) == 1


def test_timeout_and_unreachable_are_transient() -> None:
    llm = FakeLLM([("sleep", 2.0)])
    with llm, pytest.raises(TransientAgentError, match=r"timed out after 0\.2s"):
        compose(LEAD.model_copy(update={"timeout_seconds": 0.2}), ctx(llm.base_url))
    with pytest.raises(TransientAgentError, match=r"unreachable|connection failed"):
        compose(LEAD, ctx(llm.base_url))  # the server is gone


def test_render_template_named_inline_and_errors() -> None:
    c = ctx(None)
    named = render_template(RenderInput(template="nurture_welcome", vars={"name": "Bob"}), c)
    assert named.subject == "Welcome, Bob"
    assert named.body.startswith("Hi Bob,")
    inline = render_template(
        RenderInput(subject="Hi $who", body="Costs $$5, ${who}.", vars={"who": "Ada"}), c
    )
    assert (inline.template, inline.subject, inline.body) == ("inline", "Hi Ada", "Costs $5, Ada.")
    with pytest.raises(PermanentAgentError, match=r"vars.who: template 'inline' needs a value"):
        render_template(RenderInput(subject="Hi $who", body="x"), c)
    with pytest.raises(ValidationError, match=r"unknown template 'nope' \(known: hot_lead, notice"):
        RenderInput(template="nope")
    with pytest.raises(ValidationError, match="an inline template needs both"):
        RenderInput(subject="only a subject")
