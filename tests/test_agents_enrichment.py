"""Enrichment reads job titles word by word: ``cto`` is not inside ``director``, ``coo`` not inside
``coordinator``, and a vice president is a vp, not the president."""

from __future__ import annotations

import pytest

from agents.enrichment import classify_title

TITLES: list[tuple[str, str, str | None]] = [
    ("Director of Sales", "director", "sales"),
    ("Marketing Coordinator", "staff", "marketing"),
    ("Vice President Marketing", "vp", "marketing"),
    ("Vice-President, Finance", "vp", "finance"),
    ("Senior Vice President of Sales", "vp", "sales"),
    ("SVP, Global Sales", "vp", "sales"),
    ("VP of Engineering", "vp", "engineering"),
    ("Head of Growth", "vp", "marketing"),
    ("Head of Content", "vp", "marketing"),
    ("Chief Technology Officer", "executive", "engineering"),
    ("CTO", "executive", "engineering"),
    ("CEO", "executive", None),
    ("Co-Founder & CEO", "executive", None),
    ("Founder", "executive", None),
    ("President", "executive", None),
    ("Owner", "executive", None),
    ("Chief Financial Officer", "executive", "finance"),
    ("Chief Operating Officer", "executive", "operations"),
    ("Chief Marketing Officer", "executive", "marketing"),
    ("Managing Director", "director", None),
    ("Director of Product Marketing", "director", "marketing"),
    ("Director of Finance", "director", "finance"),
    ("Director of Operations", "director", "operations"),
    ("Engineering Manager", "manager", "engineering"),
    ("Regional Sales Manager", "manager", "sales"),
    ("Content Marketing Manager", "manager", "marketing"),
    ("Operations Manager", "manager", "operations"),
    ("Customer Success Manager", "manager", None),
    ("Team Lead, Customer Support", "manager", None),
    ("Principal Architect", "manager", "engineering"),
    ("Senior Software Engineer", "staff", "engineering"),
    ("Software Developer", "staff", "engineering"),
    ("DevOps Engineer", "staff", "engineering"),
    ("Account Executive", "staff", "sales"),
    ("Business Development Representative", "staff", "sales"),
    ("Account Coordinator", "staff", None),
    ("Financial Controller", "staff", "finance"),
    ("Supply Chain Coordinator", "staff", "operations"),
    ("Executive Assistant", "staff", None),
    ("Independent Contractor", "staff", None),
    ("Leadership Coach", "staff", None),
    ("Doctor of Pharmacy", "staff", None),
]


def test_the_table_holds_forty_real_titles() -> None:
    assert len(TITLES) >= 40
    assert len({t for t, _, _ in TITLES}) == len(TITLES)


@pytest.mark.parametrize(("title", "seniority", "department"), TITLES)
def test_titles_are_read_word_by_word(title: str, seniority: str, department: str | None) -> None:
    assert classify_title(title) == (seniority, department)


def test_no_title_is_staff_without_department() -> None:
    assert classify_title(None) == ("staff", None)
    assert classify_title("") == ("staff", None)
