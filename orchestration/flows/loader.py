"""Load flows from YAML or JSON files, and keep the catalog of known flows by name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from orchestration.errors import FlowValidationError, UnknownFlowError
from orchestration.flows.agents import AgentLookup
from orchestration.flows.model import Flow
from orchestration.flows.validate import parse_flow


def read_definition(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FlowValidationError(
            [f"{path.name}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"]
        ) from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise FlowValidationError([f"{path.name}: not valid {path.suffix[1:] or 'YAML'}: {exc}"]) from None
    except RecursionError:
        raise FlowValidationError([f"{path.name}: nested too deeply to read; flatten it"]) from None
    if not isinstance(data, dict):
        raise FlowValidationError([f"{path.name}: a flow file must hold one mapping (name, steps, ...)"])
    return data


def load_flow(path: Path, registry: AgentLookup | None = None) -> Flow:
    return parse_flow(read_definition(path), registry)


class FlowCatalog:
    """Flows by name. The latest added definition of a name wins."""

    def __init__(self, registry: AgentLookup | None = None) -> None:
        self.registry = registry
        self._flows: dict[str, Flow] = {}

    def add(self, flow: Flow | dict[str, Any]) -> Flow:
        checked = parse_flow(flow, self.registry)
        self._flows[checked.name] = checked
        return checked

    def add_directory(self, directory: Path) -> list[Flow]:
        files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml"), *directory.glob("*.json")])
        return [self.add(read_definition(f)) for f in files]

    def get(self, name: str) -> Flow:
        try:
            return self._flows[name]
        except KeyError:
            raise UnknownFlowError(name, self._flows) from None

    def __iter__(self) -> Iterator[Flow]:
        return iter(sorted(self._flows.values(), key=lambda f: f.name))

    def __contains__(self, name: object) -> bool:
        return name in self._flows
