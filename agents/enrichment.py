"""Enrichment: what an email address and a job title say about a lead."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field, field_validator

from agents.context import AgentContext
from agents.errors import PermanentAgentError

FREE_MAIL = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "hotmail.com",
        "outlook.com",
        "live.com",
        "aol.com",
        "icloud.com",
        "me.com",
        "proton.me",
        "protonmail.com",
        "gmx.com",
        "gmx.de",
        "web.de",
        "mail.com",
        "yandex.com",
        "zoho.com",
        "fastmail.com",
    }
)
_EMAIL = re.compile(r"^[^@\s]+@([A-Za-z0-9-]+\.)+[A-Za-z]{2,}$")
_SENIORITY = (
    ("executive", ("chief", "ceo", "cto", "cfo", "coo", "cmo", "founder", "owner", "president")),
    ("vp", ("vp", "vice president", "head of")),
    ("director", ("director",)),
    ("manager", ("manager", "lead", "principal")),
)
_DEPARTMENTS = (
    ("engineering", ("engineer", "developer", "cto", "architect", "devops", "software")),
    ("marketing", ("marketing", "cmo", "growth", "brand", "content")),
    ("sales", ("sales", "account executive", "business development", "revenue")),
    ("finance", ("finance", "cfo", "accounting", "controller")),
    ("operations", ("operations", "coo", "ops")),
)


class EnrichInput(BaseModel):
    email: str
    name: str | None = None
    title: str | None = None
    company: str | None = None
    source: str | None = None

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        value = value.strip().lower()
        if not _EMAIL.match(value):
            raise ValueError(f"not an email address: {value!r}")
        return value


class EnrichOutput(BaseModel):
    email: str
    name: str | None
    domain: str
    free_mail: bool
    company: str | None
    title: str | None
    seniority: str = Field(description="executive, vp, director, manager or staff")
    department: str | None
    source: str | None


def company_from_domain(domain: str) -> str:
    """``acme-robotics.co.uk`` -> ``Acme Robotics``."""
    labels = domain.split(".")
    core = labels[-3] if len(labels) >= 3 and labels[-2] in {"co", "com", "org", "net", "ac"} else labels[-2]
    return " ".join(part.capitalize() for part in re.split(r"[-_]", core) if part)


def classify_title(title: str | None) -> tuple[str, str | None]:
    text = (title or "").lower()
    seniority = next((level for level, words in _SENIORITY if any(w in text for w in words)), "staff")
    department = next((dept for dept, words in _DEPARTMENTS if any(w in text for w in words)), None)
    return seniority, department


def enrich(inp: EnrichInput, ctx: AgentContext) -> EnrichOutput:
    domain = inp.email.rsplit("@", 1)[1]
    if domain.endswith((".invalid", ".example", ".test")):
        raise PermanentAgentError(f"email domain {domain!r} cannot receive mail")
    free = domain in FREE_MAIL
    company = inp.company or (None if free else company_from_domain(domain))
    seniority, department = classify_title(inp.title)
    return EnrichOutput(
        email=inp.email,
        name=inp.name,
        domain=domain,
        free_mail=free,
        company=company,
        title=inp.title,
        seniority=seniority,
        department=department,
        source=inp.source,
    )
