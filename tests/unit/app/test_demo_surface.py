"""The demo, simulator and dashboard modules: honest sorted ``__all__``, the one-way layout
(``app`` never imports ``nats`` at run time), and small modules."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from tests.unit.app.test_web_surface import FORBIDDEN, runtime_imports

MODULES = [
    "app.dashboard.charts",
    "app.dashboard.handlers",
    "app.dashboard.live",
    "app.dashboard.pages",
    "app.dashboard.state",
    "app.demo.children",
    "app.demo.status",
    "app.demo.supervisor",
    "app.simulator.behaviour",
    "app.simulator.classroom",
    "app.simulator.events",
    "app.simulator.run",
    "app.simulator.senders",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_is_sorted_and_every_name_resolves(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__all__ == sorted(module.__all__)
    for exported in module.__all__:
        assert hasattr(module, exported), f"{name}.__all__ lists {exported!r}, which it does not define"


@pytest.mark.parametrize("name", MODULES)
def test_imports_point_one_way_and_modules_stay_small(name: str) -> None:
    source = Path(str(importlib.import_module(name).__file__)).read_text(encoding="utf-8")
    assert not runtime_imports(source) & FORBIDDEN["app"]
    assert source.count("\n") < 500


def test_every_module_of_the_family_is_checked() -> None:
    app_dir = Path(importlib.import_module("app").__file__).parent  # type: ignore[arg-type]
    family = sorted(
        ".".join(path.relative_to(app_dir.parent).with_suffix("").parts) for path in app_dir.rglob("*.py")
        if path.relative_to(app_dir).parts[0].startswith(("dashboard", "demo", "simulator")) and path.stem != "__init__"
    )
    assert family == MODULES
