"""Figures a test measures (counts, ratios) for a human reading the run with ``pytest -s`` or
``-rP``: one ``FIGURE`` line each on the test's standard output."""

from __future__ import annotations

import sys


def figure(text: str) -> None:
    sys.stdout.write(f"FIGURE {text}\n")
