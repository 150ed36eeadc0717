"""Message templates: named subject + body pairs with ``$name`` / ``${name}`` placeholders.

Rendering uses :class:`string.Template` (no attribute access, no code): a placeholder with no value
is an error that names it. The ``render_template`` agent renders a named template or an inline one.
"""

from __future__ import annotations

from dataclasses import dataclass
from string import Template
from typing import Any

from pydantic import BaseModel, Field, model_validator

from agents.context import AgentContext
from agents.errors import PermanentAgentError


@dataclass(frozen=True)
class MessageTemplate:
    subject: str
    body: str
    defaults: tuple[tuple[str, str], ...] = ()

    def placeholders(self) -> set[str]:
        return set(Template(self.subject).get_identifiers()) | set(Template(self.body).get_identifiers())


TEMPLATES: dict[str, MessageTemplate] = {
    "hot_lead": MessageTemplate(
        subject="$company and campaignflow: a next step",
        body=(
            "Hi $name,\n\n"
            "Thanks for your interest. As $title at $company you are exactly who we built campaignflow\n"
            "for: campaigns that enrich, score and follow up on every lead on their own.\n\n"
            "Would a 20-minute call this week suit you? Reply with a time and I will send an invite.\n\n"
            "Best regards,\nThe campaignflow team\n"
        ),
        defaults=(("name", "there"), ("title", "a leader"), ("company", "your team")),
    ),
    "nurture_welcome": MessageTemplate(
        subject="Welcome, $name",
        body=(
            "Hi $name,\n\n"
            "Thanks for signing up. Over the next weeks we will send you a few short notes on running\n"
            "campaigns that follow up by themselves. You can unsubscribe at any time.\n\n"
            "The campaignflow team\n"
        ),
        defaults=(("name", "there"),),
    ),
    "notice": MessageTemplate(subject="$subject", body="$text\n"),
}


def render(tpl: MessageTemplate, values: dict[str, Any], *, name: str = "inline") -> tuple[str, str]:
    """Subject and body with every placeholder filled, or an error naming the missing ones."""
    scope = dict(tpl.defaults)
    scope.update({k: str(v) for k, v in values.items() if v is not None and v != ""})
    missing = sorted(tpl.placeholders() - scope.keys())
    if missing:
        fields = ", ".join(f"vars.{m}" for m in missing)
        raise PermanentAgentError(f"{fields}: template {name!r} needs a value; add it to vars")
    try:
        return Template(tpl.subject).substitute(scope), Template(tpl.body).substitute(scope)
    except ValueError as exc:  # a lone "$" or a malformed placeholder in an inline template
        raise PermanentAgentError(f"template {name!r} is malformed: {exc}; write $$ for a dollar") from None


class RenderInput(BaseModel):
    template: str | None = Field(None, description=f"A built-in template: {', '.join(sorted(TEMPLATES))}.")
    subject: str | None = Field(None, description="Inline subject template (with body, instead of template).")
    body: str | None = Field(None, description="Inline body template (with subject, instead of template).")
    vars: dict[str, Any] | None = Field(None, description="Values for the placeholders.")

    @model_validator(mode="after")
    def _one_source(self) -> RenderInput:
        inline = self.subject is not None or self.body is not None
        if self.template is None and not inline:
            raise ValueError("template: name a template or give subject and body")
        if self.template is not None and inline:
            raise ValueError("template: give either template or subject and body, not both")
        if inline and (self.subject is None or self.body is None):
            raise ValueError("subject, body: an inline template needs both")
        if self.template is not None and self.template not in TEMPLATES:
            known = ", ".join(sorted(TEMPLATES))
            raise ValueError(f"template: unknown template {self.template!r} (known: {known})")
        return self


class RenderOutput(BaseModel):
    template: str
    subject: str
    body: str


def render_template(inp: RenderInput, ctx: AgentContext) -> RenderOutput:
    if inp.template is not None:
        name, tpl = inp.template, TEMPLATES[inp.template]
    else:
        assert inp.subject is not None
        assert inp.body is not None
        name, tpl = "inline", MessageTemplate(subject=inp.subject, body=inp.body)
    subject, body = render(tpl, inp.vars or {}, name=name)
    return RenderOutput(template=name, subject=subject, body=body)
