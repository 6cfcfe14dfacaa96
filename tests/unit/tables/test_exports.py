"""The public surface of ``tables`` is a sorted, honest ``__all__``."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import tables


def test_all_is_sorted() -> None:
    assert tables.__all__ == sorted(tables.__all__)


def test_all_has_no_duplicates() -> None:
    assert len(set(tables.__all__)) == len(tables.__all__)


@pytest.mark.parametrize("name", tables.__all__)
def test_every_exported_name_resolves(name: str) -> None:
    assert getattr(tables, name) is not None


MODULES = sorted(info.name for info in pkgutil.iter_modules(tables.__path__, "tables."))


@pytest.mark.parametrize("module_name", MODULES)
def test_each_module_all_is_sorted_and_resolves(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert module.__all__ == sorted(module.__all__)
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.__all__ lists {name!r}, which it does not define"


FORBIDDEN = (
    *(f"{verb} {package}" for verb in ("import", "from") for package in ("app", "agents", "bridges")),
    *(f"{verb} {package}" for verb in ("import", "from") for package in ("faust", "nats", "pydantic")),
    "import time\n",
    "time.time(",
    "datetime.now(",
)


@pytest.mark.parametrize("module_name", MODULES)
def test_tables_imports_nothing_from_the_other_packages(module_name: str) -> None:
    # The layout rule of app/__init__.py: tables is the bottom layer and stays pure.
    module = importlib.import_module(module_name)
    source = Path(str(module.__file__)).read_text(encoding="utf-8")
    for forbidden in FORBIDDEN:
        assert forbidden not in source, f"{module_name} contains {forbidden!r}"
