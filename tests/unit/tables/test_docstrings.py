"""The examples in ``tables``' docstrings run, and say what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import tables

MODULES = sorted(info.name for info in pkgutil.iter_modules(tables.__path__, "tables."))
WITH_EXAMPLES = {"tables.aggregators", "tables.windowed"}


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name: str) -> None:
    outcome = doctest.testmod(importlib.import_module(module_name), optionflags=doctest.ELLIPSIS)
    assert outcome.failed == 0
    assert (outcome.attempted > 0) == (module_name in WITH_EXAMPLES)
