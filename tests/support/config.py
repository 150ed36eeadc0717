"""Point the running app (the in-process worker included) at a service for one test.

Settings are read once per process (``get_settings`` is cached), so the cache is cleared after the
environment changes and again after it is restored.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from orchestration.settings import get_settings


@contextmanager
def settings_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> Iterator[None]:
    names = [f"CAMPAIGNFLOW_{name.upper()}" for name in env]
    for name, value in zip(names, env.values(), strict=True):
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for name in names:
            monkeypatch.delenv(name, raising=False)
        get_settings.cache_clear()
