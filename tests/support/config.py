"""Point the running app (the in-process worker included) at a service for one test.

The process's settings are replaced for the test (``orchestration.settings.configure``) and put
back afterwards; the environment is not touched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from orchestration.settings import Settings, configure, get_settings


@contextmanager
def settings_env(monkeypatch: pytest.MonkeyPatch, **values: str) -> Iterator[None]:
    """Settings with ``values`` (field names, e.g. ``smtp_url=...``) for the duration of the block."""
    before = get_settings()
    configure(Settings.model_validate({**before.model_dump(), **values}))
    try:
        yield
    finally:
        configure(before)
