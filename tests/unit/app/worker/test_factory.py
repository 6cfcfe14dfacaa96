"""How the worker finds its agent: every top-level module of ``agents`` is one, and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.worker.factory import agent_names, app_name, load_agent
from tables.errors import ConfigError


def test_the_agents_are_the_metric_modules_and_not_the_runtime_they_share() -> None:
    assert agent_names() == ["engagement", "outcomes", "progression"]


def test_an_agent_loads_by_name_and_has_a_build() -> None:
    assert callable(load_agent("engagement").build)


@pytest.mark.parametrize("name", ["windowed", "windowed.runtime", "hints"])
def test_a_name_that_is_not_a_metric_module_is_refused_with_the_known_ones(name: str) -> None:
    with pytest.raises(ConfigError, match="unknown agent; known: engagement, outcomes, progression"):
        load_agent(name)


def test_a_module_file_without_build_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hints.py"
    path.write_text('"""A metric under development that forgot its build."""\n')
    with pytest.raises(ConfigError, match=r"defines no build\(app, context\)"):
        load_agent(str(path))
    assert app_name(str(path)) == "hints"
