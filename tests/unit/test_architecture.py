"""The house rules, held against every module of the repository.

- Imports point one way between packages, as :data:`ARROWS` says (``app/__init__.py`` draws the
  same picture), and the product never imports the dev-only packages.
- No import cycles between modules.
- Third-party libraries stay in their layer: of the product, only ``bridges`` imports ``nats``,
  only ``app`` ``aiohttp`` and only ``app`` and ``agents`` ``prometheus_client``, at run time;
  ``tables`` is pure and never reads the clock.
- At most 500 lines per module.
- A sorted ``__all__`` in every package ``__init__`` (and in every module that has one), naming
  only what the module defines.

There are no exceptions: a module that breaks a rule is split or fixed in the change that breaks
it (the last listed exception went with the split of the event-contract tests).

Imports are read with :mod:`ast`, at module level and inside functions alike: an import inside a
function still ties its module to another, it only does so later. Imports under
``if TYPE_CHECKING:`` count for the arrows and the cycles (they are dependencies of the design)
but not for the libraries, which they never load.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[2]

PRODUCT: Final = ("app", "agents", "bridges", "contract", "tables")
DEV: Final = ("testkit", "benchmarks", "tests", "deploy")

#: Who may import whom. A module belongs to the longest package (or module) named here that
#: holds it; imports inside one of them are free, and checked for cycles only.
_BELOW_APP: Final = {"agents", "bridges", "bridges.group", "bridges.transport", "bridges.public", "contract", "tables"}
_APP_LEAVES: Final = {"app.access", "app.capacity", "app.logs", "app.settings", "app.signals"}
PRODUCT_ARROWS: Final[dict[str, set[str]]] = {
    "app": {"app.cli"},  # app/__init__.py and app/__main__.py: ``python -m app``
    "app.cli": {"app.worker", "app.web", "app.demo", "app.simulator", *_APP_LEAVES, *_BELOW_APP},
    "app.worker": {"app.monitoring", *_APP_LEAVES, *_BELOW_APP},
    "app.web": {"app.dashboard", "app.monitoring", *_APP_LEAVES, *_BELOW_APP},
    "app.demo": {*_APP_LEAVES, *_BELOW_APP},
    "app.simulator": {*_APP_LEAVES, *_BELOW_APP},
    "app.dashboard": {*_APP_LEAVES, *_BELOW_APP},
    "app.monitoring": _BELOW_APP,  # /metrics and the probes of the web process and the workers
    "app.settings": _BELOW_APP,
    "app.signals": _BELOW_APP,
    "app.logs": set(),
    "app.capacity": set(),
    "app.access": _BELOW_APP,
    "agents": {"contract", "tables"},
    # public -> group: final values and dead letters are fenced by the member's lease deadline.
    "bridges.public": {"bridges.transport", "bridges.group", "bridges", "contract", "tables"},
    "bridges.transport": {"bridges.group", "bridges", "tables"},  # the reusable driver: no contract
    "bridges.group": {"bridges", "tables"},
    "bridges": {"tables"},  # connection, jetstream, naming, server, storage: what every part of bridges shares
    "contract": {"tables"},
    "tables": set(),
}
#: the dev-only packages may use the product; the product never uses them
ARROWS: Final[dict[str, set[str]]] = {
    **PRODUCT_ARROWS,
    "testkit": set(PRODUCT_ARROWS),
    "benchmarks": {"testkit", *PRODUCT_ARROWS},
    "tests": {"benchmarks", "testkit", "deploy", *PRODUCT_ARROWS},
    "deploy": set(),
}

#: top-level package -> third-party packages it must not import at run time.
#: ``prometheus_client``: the windowed runtime (``agents``) states its own metrics and ``app``
#: exports them; ``bridges`` hands out plain numbers (stats, samples of lag and storage) that
#: ``app`` turns into metrics, so the reusable driver needs no metrics library and the names of
#: every metric are decided in two places only; ``tables`` and ``contract`` stay pure.
FORBIDDEN_LIBRARIES: Final = {
    "tables": {"faust", "mode", "nats", "aiohttp", "pydantic", "pydantic_core", "prometheus_client"},
    "contract": {"faust", "mode", "nats", "aiohttp", "prometheus_client"},
    "agents": {"nats", "aiohttp"},
    "bridges": {"aiohttp", "prometheus_client"},
    "app": {"nats"},
}

#: The tables never read the clock themselves: it is passed in.
CLOCK_READS: Final = ("import time\n", "time.time(", "datetime.now(")

MAX_LINES: Final = 500

#: packages whose ``__init__`` needs no ``__all__``: test packages are not interfaces
_NO_SURFACE: Final = ("tests",)


@dataclass(frozen=True)
class Module:
    name: str
    path: str  # relative to the repository, with slashes
    source: str
    tree: ast.Module

    @property
    def is_package(self) -> bool:
        return self.path.endswith("/__init__.py")

    @property
    def package(self) -> str:
        """The package a relative import starts from."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


@dataclass(frozen=True)
class Import:
    target: str  # the module (or package) imported, absolute
    line: int
    at_run_time: bool  # False under ``if TYPE_CHECKING:``


@cache
def modules() -> dict[str, Module]:
    found = {}
    for top in (*PRODUCT, *DEV):
        for path in sorted((ROOT / top).rglob("*.py")):
            relative = path.relative_to(ROOT)
            parts = relative.with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            source = path.read_text(encoding="utf-8")
            found[name] = Module(name, relative.as_posix(), source, ast.parse(source, str(relative)))
    return found


def _first_party(name: str) -> bool:
    return name.split(".")[0] in (*PRODUCT, *DEV)


def _resolve(name: str) -> str:
    """``name``, or the nearest package above it that is a module of the tree."""
    known = modules()
    while name not in known and "." in name:
        name = name.rpartition(".")[0]
    return name


def read_imports(module: Module) -> Iterator[Import]:
    """Every first-party import of ``module``, wherever it stands, and every third-party one as
    its top-level package name (``target`` then has no dot and is not in the tree)."""

    def visit(node: ast.AST, at_run_time: bool) -> Iterator[Import]:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.body:
                yield from visit(child, False)
            for child in node.orelse:
                yield from visit(child, at_run_time)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.name
                yield Import(_resolve(name) if _first_party(name) else name.split(".")[0], node.lineno, at_run_time)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.package.split(".")
                base = base[: len(base) - node.level + 1]
                origin = ".".join([*base, *([node.module] if node.module else [])])
            else:
                origin = node.module or ""
            if not _first_party(origin):
                yield Import(origin.split(".")[0], node.lineno, at_run_time)
                return
            for alias in node.names:
                submodule = f"{origin}.{alias.name}"
                target = submodule if submodule in modules() else _resolve(origin)
                yield Import(target, node.lineno, at_run_time)
        for child in ast.iter_child_nodes(node):
            yield from visit(child, at_run_time)

    yield from visit(module.tree, True)


def component(name: str) -> str:
    """The package of :data:`ARROWS` that holds module ``name``."""
    while name not in ARROWS:
        name = name.rpartition(".")[0]
        assert name, "a module outside every package ARROWS names"
    return name


@cache
def graph() -> dict[str, set[str]]:
    """module -> the first-party modules it imports."""
    known = modules()
    return {
        name: {i.target for i in read_imports(module) if i.target in known and i.target != name}
        for name, module in known.items()
    }


def test_imports_point_one_way() -> None:
    wrong = set()
    for name, module in modules().items():
        source = component(name)
        for found in read_imports(module):
            if found.target not in modules():
                continue
            target = component(found.target)
            if target != source and target not in ARROWS[source]:
                wrong.add(f"{module.path}:{found.line}: {source} -> {target} ({found.target})")
    assert not wrong, "imports against the arrows of ARROWS:\n" + "\n".join(sorted(wrong))


def test_the_product_never_imports_the_dev_packages() -> None:
    # test_imports_point_one_way holds the code to ARROWS; this holds ARROWS to the rule.
    for package, allowed in PRODUCT_ARROWS.items():
        assert {p.split(".")[0] for p in allowed} <= set(PRODUCT), package


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """The cycles of ``edges``: its strongly connected components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            members = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                members.append(member)
                if member == node:
                    break
            if len(members) > 1:
                found.append(sorted(members))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


def test_no_import_cycles() -> None:
    assert strongly_connected(graph()) == []


def test_third_party_libraries_stay_in_their_layer() -> None:
    wrong = set()
    for name, module in modules().items():
        forbidden = FORBIDDEN_LIBRARIES.get(name.split(".")[0], set())
        for found in read_imports(module):
            if found.at_run_time and found.target in forbidden:
                wrong.add(f"{module.path}:{found.line}: imports {found.target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_tables_never_read_the_clock() -> None:
    for name, module in modules().items():
        if name.split(".")[0] == "tables":
            for read in CLOCK_READS:
                assert read not in module.source, f"{module.path} contains {read!r}: pass the clock in"


def _too_long(module: Module) -> bool:
    return len(module.source.splitlines()) > MAX_LINES


def _unsorted_all(module: Module) -> bool:
    names = declared_all(module)
    return names is not None and (names != sorted(names) or len(set(names)) != len(names))


#: rule -> whether a module breaks it
RULES: Final = {"lines": _too_long, "sorted __all__": _unsorted_all}


def breaking(rule: str) -> list[str]:
    """The modules that break ``rule``."""
    return [m.path for m in modules().values() if RULES[rule](m)]


def test_modules_stay_under_the_limit() -> None:
    long = breaking("lines")
    assert not long, f"over {MAX_LINES} lines (split them by concern): {long}"


def declared_all(module: Module) -> list[str] | None:
    """The names of a module-level ``__all__`` (a literal list or tuple), or None if it has none."""
    for node in module.tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            value = node.value
            assert isinstance(value, ast.List | ast.Tuple), f"{module.path}: __all__ is not a literal list"
            names = [element.value for element in value.elts if isinstance(element, ast.Constant)]
            assert len(names) == len(value.elts), f"{module.path}: __all__ holds something other than names"
            return [str(n) for n in names]
    return None


def test_every_package_states_its_surface() -> None:
    missing = [
        m.path for m in modules().values()
        if m.is_package and m.name.split(".")[0] not in _NO_SURFACE and declared_all(m) is None
    ]
    assert not missing, f"package __init__ files without __all__: {missing}"


def test_every_all_is_sorted_without_repeats() -> None:
    wrong = breaking("sorted __all__")
    assert not wrong, f"__all__ not sorted (as sorted() sorts: capitals first), or with a name twice: {wrong}"


def _importable_with_all() -> list[str]:
    """Modules whose ``__all__`` can be checked by importing them (no tests, no ``__main__``)."""
    return sorted(
        name for name, module in modules().items()
        if name.split(".")[0] not in ("tests", "deploy") and name.rpartition(".")[2] != "__main__"
        and declared_all(module) is not None
    )


@pytest.mark.parametrize("name", _importable_with_all())
def test_every_name_of_all_is_defined(name: str) -> None:
    module = importlib.import_module(name)
    for exported in module.__all__:
        assert hasattr(module, exported), f"{name}.__all__ lists {exported!r}, which it does not define"


# -- the reader itself -----------------------------------------------------------------------


def _module(name: str, source: str) -> Module:
    return Module(name, name.replace(".", "/") + ".py", source, ast.parse(source))


def test_the_reader_sees_imports_inside_functions_relative_ones_and_submodules() -> None:
    source = (
        "import nats\n"
        "from app.web import make_web_app, models\n"
        "from . import signals\n"
        "from .demo import status\n"
        "def late():\n"
        "    from app.demo import run_demo\n"
    )
    found = {(i.target, i.at_run_time) for i in read_imports(_module("app.example", source))}
    assert found == {
        ("nats", True),
        ("app.web", True),  # make_web_app is a name app.web hands on, not a module
        ("app.web.models", True),  # models is a module of app.web
        ("app.signals", True),
        ("app.demo.status", True),
        ("app.demo", True),
    }


def test_imports_for_annotations_only_are_not_run() -> None:
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import aiohttp\n    from app.web import models\n"
    found = {(i.target, i.at_run_time) for i in read_imports(_module("bridges.example", source))}
    assert found == {("typing", True), ("aiohttp", False), ("app.web.models", False)}


def test_cycles_are_found() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert strongly_connected(edges) == [["a", "b", "c"]]
