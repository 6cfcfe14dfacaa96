"""No built-in metric is named in advance: the product learns its metrics from the registry.

A metric is one module, ``agents/<metric>.py``, with an optional typed refinement in
``contract/typed/<metric>.py``; everything else (the reader, the query API, OpenAPI, the key and
subject names, the demo, the NATS permissions) learns the metrics that run from the descriptions
the workers publish (contract/registry.py). So a string of the product's code that names a
built-in metric (``"engagement"``, or a key or subject of it: ``"engagement.<...>"``) outside
those two modules is a place a metric loaded from a file would not be served alike.

Read with :mod:`ast`: string constants, the parts of f-strings too, but not docstrings (prose may
name an example). The places that still do are listed in :data:`NAMED_ON_PURPOSE` with why.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from agents import metric_modules

ROOT: Final = Path(__file__).resolve().parents[2]
#: the product's packages, and deploy/ (it renders the permissions every role gets)
SCANNED: Final = ("app", "agents", "bridges", "contract", "tables", "deploy")
BUILT_IN: Final = tuple(metric_modules())

#: (path, string) -> why it may name a built-in metric there
_EVENT_TYPE = "the event type engagement (an event's `type`), not the metric"
_DASHBOARD = (
    "the dashboard's classroom and student charts: optional refinements of the built-in metrics, "
    "beside the generic view that shows any metric from its description (app/dashboard/generic/)"
)
NAMED_ON_PURPOSE: Final[dict[tuple[str, str], str]] = {
    ("contract/events.py", "engagement"): _EVENT_TYPE,
    ("contract/event_data.py", "engagement"): _EVENT_TYPE,
    ("contract/schemas.py", "engagement"): _EVENT_TYPE,
    ("app/simulator/behaviour.py", "engagement"): _EVENT_TYPE,
    ("app/simulator/events.py", "engagement"): _EVENT_TYPE,
    **{("app/dashboard/state.py", name): _DASHBOARD for name in ("engagement", "outcomes", "progression")},
    **{
        ("app/dashboard/pages.py", text): _DASHBOARD
        for text in (
            "engagement.accuracy", "engagement.answers", "engagement.active_seconds",
            "progression.completion_rate", "progression.levels_completed", "progression.score", "outcomes.",
        )
    },
}


def own_modules(metric: str) -> set[str]:
    return {f"agents/{metric}.py", f"contract/typed/{metric}.py"}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def metric_strings(source: str, metrics: tuple[str, ...]) -> Iterator[tuple[int, str, str]]:
    """``(line, string, metric)`` for each string constant of ``source`` that is a metric's name
    or starts as its keys and subjects do (``<metric>.``)."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            for metric in metrics:
                if node.value == metric or node.value.startswith(f"{metric}."):
                    yield node.lineno, node.value, metric


def named_metrics() -> list[tuple[str, int, str]]:
    """``(path, line, string)`` of every built-in metric named outside its own modules."""
    found = []
    for package in SCANNED:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            for line, text, metric in metric_strings(path.read_text(encoding="utf-8"), BUILT_IN):
                if relative not in own_modules(metric):
                    found.append((relative, line, text))
    return found


def test_no_built_in_metric_is_named_outside_its_own_modules() -> None:
    assert BUILT_IN == ("engagement", "outcomes", "progression")
    unexpected = [(path, line, text) for path, line, text in named_metrics() if (path, text) not in NAMED_ON_PURPOSE]
    assert not unexpected, (
        "these name a built-in metric: read the metric from the registry (MetricsReader.describe, "
        f"registry.all()) instead, or list the place in NAMED_ON_PURPOSE with why: {unexpected}"
    )


@pytest.mark.parametrize(("path", "text"), sorted(NAMED_ON_PURPOSE))
def test_each_place_named_on_purpose_still_names_it(path: str, text: str) -> None:
    # An entry whose string went away is dropped here, so the list shrinks as the code does.
    assert (path, text) in {(p, t) for p, _, t in named_metrics()}, f"{path} no longer names {text!r}: drop it"


def test_the_reader_finds_names_in_strings_and_f_strings_but_not_in_prose() -> None:
    source = '''
"""The engagement module's docstring may say engagement."""
def f(reader, student):
    """Reads engagement."""
    reader.latest("engagement", student)  # engagement in a comment is prose too
    key = f"outcomes.{student}.1"
    return "engagements", "progression_x", "my-engagement"
'''
    assert list(metric_strings(source, BUILT_IN)) == [(5, "engagement", "engagement"), (6, "outcomes.", "outcomes")]
