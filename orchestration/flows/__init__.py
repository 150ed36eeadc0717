"""The flow language: models, conditions, references, validation, loading and diagrams."""

from orchestration.flows.loader import FlowCatalog, load_flow, read_definition
from orchestration.flows.model import BranchNode, Flow, MapNode, Node, ParallelNode, SequenceNode, StepNode
from orchestration.flows.validate import parse_flow

__all__ = [
    "BranchNode",
    "Flow",
    "FlowCatalog",
    "MapNode",
    "Node",
    "ParallelNode",
    "SequenceNode",
    "StepNode",
    "load_flow",
    "parse_flow",
    "read_definition",
]
