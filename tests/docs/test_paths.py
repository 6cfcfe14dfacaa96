"""The files the README and the docs name are where they say: a module that moves takes its
mentions along."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted([REPO / "README.md", REPO / "BENCHMARKS.md", *(REPO / "docs").glob("*.md")])
_PATH = re.compile(r"\b(?:app|agents|benchmarks|bridges|contract|deploy|docs|examples|schemas|tables|testkit|tests)/[\w./-]*[\w/]")

#: paths a document names that are not this repository's, and why
NOT_OURS = {
    "agents/hints.py": "the module the tutorial has its reader write",
    "contract/typed/hints.py": "the optional typed model the tutorial says its reader may write",
    "examples/windowed_aggregation.py": "faust's own example, in faust's repository",
    "tests/stress": "faust's own stress test, in faust's repository",
}

@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_path_it_names_exists(document: Path) -> None:
    named = set(_PATH.findall(document.read_text(encoding="utf-8")))
    assert named or document.name != "README.md"
    missing = sorted(path for path in named - NOT_OURS.keys() if not (REPO / path).exists())
    assert not missing, f"{document.name} names paths that do not exist: {missing}"
