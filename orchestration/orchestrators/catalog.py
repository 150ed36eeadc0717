"""The flows campaignflow knows: the built-in ones beside this file, plus ``CAMPAIGNFLOW_FLOWS_DIR``."""

from __future__ import annotations

from pathlib import Path

from orchestration.flows import FlowCatalog
from orchestration.flows.agents import AgentLookup

BUILTIN_FLOWS = Path(__file__).parent / "flows"


def flow_catalog(agents: AgentLookup, flows_dir: Path | None = None) -> FlowCatalog:
    """The built-in flows, then those of ``flows_dir``, each checked against ``agents``."""
    catalog = FlowCatalog(agents)
    catalog.add_directory(BUILTIN_FLOWS)
    if flows_dir is not None:
        catalog.add_directory(flows_dir)
    return catalog
