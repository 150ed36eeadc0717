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
#: Title terms, matched as whole words (``cto`` is not inside ``director``, ``coo`` not inside
#: ``coordinator``); the first level and the first department with a matching term win.
_SENIORITY = (
    (
        "executive",
        "chief, ceo, cto, cfo, coo, cmo, cro, cio, ciso, cpo, founder, cofounder, co founder, "
        "owner, president, managing partner",
    ),
    ("vp", "vp, svp, evp, avp, head of"),
    ("director", "director, directors"),
    ("manager", "manager, managers, lead, team lead, principal, supervisor"),
)
_DEPARTMENTS = (
    (
        "engineering",
        "engineer, engineers, engineering, developer, developers, cto, architect, devops, "
        "software, sre, site reliability, technology, technical, programmer",
    ),
    ("marketing", "marketing, marketer, cmo, growth, brand, content, seo, demand generation"),
    ("sales", "sales, account executive, account manager, business development, revenue, cro, bdr, sdr"),
    ("finance", "finance, financial, cfo, accounting, accountant, controller, treasurer"),
    ("operations", "operations, operating, coo, ops, supply chain, logistics"),
)


def title_words(title: str | None) -> str:
    """The title in lower case, one space between words, padded: `` vp sales ``. A vice president
    reads as ``vp`` (so ``president`` alone means the president)."""
    words = " ".join(re.findall(r"[a-z0-9]+", (title or "").lower()))
    return f" {words} ".replace(" vice president ", " vp ")


def _mentions(words: str, terms: str) -> bool:
    return any(f" {term.strip()} " in words for term in terms.split(","))


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
    """Seniority (executive, vp, director, manager or staff) and department from a job title."""
    words = title_words(title)
    seniority = next((level for level, terms in _SENIORITY if _mentions(words, terms)), "staff")
    department = next((dept for dept, terms in _DEPARTMENTS if _mentions(words, terms)), None)
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
