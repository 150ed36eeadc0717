"""The flows campaignflow knows: the built-in ones beside this file, plus ``CAMPAIGNFLOW_FLOWS_DIR``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from orchestration.flows import FlowCatalog
from orchestration.registry import registry
from orchestration.settings import get_settings

BUILTIN_FLOWS = Path(__file__).parent / "flows"


@lru_cache(maxsize=1)
def flows() -> FlowCatalog:
    import orchestration.app  # noqa: F401  (loads the config, which registers the agents)

    catalog = FlowCatalog(registry)
    catalog.add_directory(BUILTIN_FLOWS)
    extra = get_settings().flows_dir
    if extra is not None:
        catalog.add_directory(extra)
    return catalog
