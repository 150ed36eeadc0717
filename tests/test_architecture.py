"""The layering rules of docs/architecture.md, checked on the code itself: no import cycles, no
registration at import time, nothing outside settings writes the environment."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("orchestration", "agents", "tasks")


def import_cycles() -> list[list[str]]:
    """Every direct import ``a -> b`` of ours where ``b`` leads back to ``a``: one chain per cycle edge."""
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)
    cycles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            chain = graph.find_shortest_chain(importer=imported, imported=importer)
            if chain:
                cycles.append([importer, *chain])
    return cycles


def test_no_import_cycles() -> None:
    cycles = import_cycles()
    assert not cycles, "import cycles (break them; see docs/architecture.md):\n" + "\n".join(
        " -> ".join(c) for c in cycles
    )


def test_importing_every_module_registers_nothing() -> None:
    """Import every module of ours (the Celery entry module aside) without bootstrapping: no task is
    bound to any app, no signal receiver of ours is connected, no agent is registered anywhere."""
    modules = sorted(
        m
        for m in grimp.build_graph(*PACKAGES).modules
        if m not in ("orchestration.app",) and not m.endswith("__main__")
    )
    code = f"""
import importlib, json
from celery import signals
from celery._state import _apps
modules = {modules!r}
for name in modules:
    importlib.import_module(name)
tasks = sorted(t for app in list(_apps) for t in app.tasks if t.startswith("campaignflow."))
receivers = sorted(
    str(getattr(r[1](), "__qualname__", r[1]()))
    for name in dir(signals)
    for sig in [getattr(signals, name)]
    if hasattr(sig, "receivers")
    for r in (sig.receivers or [])
    if "orchestration" in str(getattr(r[1](), "__module__", ""))
)
from orchestration.runtime import installed
print(json.dumps({{"tasks": tasks, "receivers": receivers, "runtime": installed() is not None}}))
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found == {"tasks": [], "receivers": [], "runtime": False}


def test_nothing_outside_settings_writes_the_environment() -> None:
    writers = []
    for path in sorted((ROOT / "orchestration").rglob("*.py")):
        if path.name == "settings.py" and path.parent.name == "orchestration":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            target = None
            if (
                isinstance(node, ast.Attribute) and node.attr in ("update", "pop", "setdefault", "clear")
            ) or (isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store | ast.Del)):
                target = node.value
            if target is not None and ast.unparse(target) == "os.environ":
                writers.append(f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}")
    assert not writers, f"os.environ written outside orchestration/settings.py: {writers}"


#: SQLAlchemy's SQL constructs; outside the store only its exceptions and URLs are used.
SQL_CONSTRUCTS = {"select", "insert", "update", "delete", "text", "table", "column", "func", "literal"}
SQL_STATEMENT = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\s", re.MULTILINE)


def test_sql_only_in_the_store() -> None:
    """No SQL construct, table column (``t.c.x``) or SQL text outside ``orchestration/store``."""
    found = []
    for package in ("orchestration", "tasks"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if (ROOT / "orchestration" / "store") in path.parents:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
                if isinstance(node, ast.Attribute) and (
                    (ast.unparse(node.value) in ("sa", "sqlalchemy") and node.attr in SQL_CONSTRUCTS)
                    or (isinstance(node.value, ast.Attribute) and node.value.attr == "c")
                ):
                    found.append(f"{where} {ast.unparse(node)}")
                elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
                    names = {a.name for a in node.names} & SQL_CONSTRUCTS
                    if names or (node.module or "").startswith(("sqlalchemy.sql", "sqlalchemy.dialects")):
                        found.append(f"{where} from {node.module} import {', '.join(sorted(names))}")
                elif (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and SQL_STATEMENT.search(node.value)
                ):
                    found.append(f"{where} SQL text")
    assert not found, "SQL outside orchestration/store (move it into a store module):\n" + "\n".join(found)
