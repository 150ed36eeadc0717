"""Scoring: a transparent points model. Every point comes with its reason."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from agents.context import AgentContext

SENIORITY_POINTS = {"executive": 30, "vp": 25, "director": 20, "manager": 10, "staff": 0}
DEPARTMENT_POINTS = {"marketing": 15, "sales": 10, "engineering": 5}
SOURCE_POINTS = {"demo_request": 25, "pricing_page": 20, "webinar": 10, "referral": 15, "newsletter": 0}
HOT_AT = 60
WARM_AT = 35


class ScoreInput(BaseModel):
    email: str
    free_mail: bool
    company: str | None = None
    seniority: str = "staff"
    department: str | None = None
    source: str | None = None


class ScoreOutput(BaseModel):
    points: int
    segment: Literal["hot", "warm", "cold"]
    reasons: list[str]


def score(inp: ScoreInput, ctx: AgentContext) -> ScoreOutput:
    reasons: list[str] = []

    def add(points: int, why: str) -> int:
        if points:
            reasons.append(f"{points:+d} {why}")
        return points

    total = add(-20 if inp.free_mail else 15, "free-mail address" if inp.free_mail else "company domain")
    total += add(10 if inp.company else 0, "known company")
    total += add(SENIORITY_POINTS.get(inp.seniority, 0), f"seniority {inp.seniority}")
    if inp.department:
        total += add(DEPARTMENT_POINTS.get(inp.department, 0), f"department {inp.department}")
    if inp.source:
        total += add(SOURCE_POINTS.get(inp.source, 5), f"source {inp.source}")
    points = max(0, min(100, total))
    segment: Literal["hot", "warm", "cold"] = (
        "hot" if points >= HOT_AT else "warm" if points >= WARM_AT else "cold"
    )
    return ScoreOutput(points=points, segment=segment, reasons=reasons)
