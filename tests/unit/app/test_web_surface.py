"""The modules of ingest, query and results: honest sorted ``__all__`` and the one-way layout.

``app -> agents, bridges -> tables``, and only ``bridges`` imports ``nats`` (imports made for
annotations only, under ``if TYPE_CHECKING:``, do not count: they never run).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

MODULES = [
    "contract.results",
    "app.web.draining",
    "app.web.event_rules",
    "app.web.ingest",
    "app.web.models",
    "app.web.openapi",
    "app.web.query",
    "app.web.process",
    "app.web.services",
    "bridges.public.durable_puller",
    "bridges.public.event_sink",
    "bridges.public.metrics_reader",
    "bridges.public.nats_ingest",
    "bridges.public.results_client",
    "bridges.public.streams",
]

# package -> top-level packages it must not import at run time
FORBIDDEN = {
    "agents": {"app", "bridges", "nats", "aiohttp"},
    "contract": {"app", "agents", "bridges", "nats", "aiohttp"},
    "bridges": {"app", "agents", "aiohttp"},
    "app": {"nats"},
}


def runtime_imports(source: str) -> set[str]:
    """Top-level package names imported, leaving out ``if TYPE_CHECKING:`` blocks."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found


@pytest.mark.parametrize("name", MODULES)
def test_all_is_sorted_and_every_name_resolves(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__all__ == sorted(module.__all__)
    assert len(set(module.__all__)) == len(module.__all__)
    for exported in module.__all__:
        assert hasattr(module, exported), f"{name}.__all__ lists {exported!r}, which it does not define"


@pytest.mark.parametrize("name", MODULES)
def test_imports_point_one_way(name: str) -> None:
    module = importlib.import_module(name)
    source = Path(str(module.__file__)).read_text(encoding="utf-8")
    imported = runtime_imports(source)
    assert not imported & FORBIDDEN[name.split(".")[0]], f"{name} imports {imported & FORBIDDEN[name.split('.')[0]]}"


@pytest.mark.parametrize("name", MODULES)
def test_modules_stay_small(name: str) -> None:
    module = importlib.import_module(name)
    lines = Path(str(module.__file__)).read_text(encoding="utf-8").count("\n")
    assert lines < 500, f"{name} has {lines} lines: split it"


def test_the_checker_sees_imports_and_skips_annotation_only_ones() -> None:
    source = "import nats\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import aiohttp\n"
    assert runtime_imports(source) == {"nats", "typing"}
