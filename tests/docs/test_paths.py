"""The files the README and the docs name are where they say: a module that moves takes its
mentions along."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted([REPO / "README.md", REPO / "BENCHMARKS.md", *(REPO / "docs").glob("*.md")])
_PATH = re.compile(r"\b(?:app|agents|benchmarks|bridges|contract|deploy|docs|tables|testkit|tests)/[\w./-]*[\w/]")

#: paths a document names that are not this repository's, and why
NOT_OURS = {
    "agents/hints.py": "the module the tutorial has its reader write",
    "tests/stress": "faust's own stress test, in faust's repository",
}

#: paths a document names before they exist, because another branch of the same issue creates
#: them: path -> why. Taken off here once the path exists (a test says when).
COMING = {
    "agents/windowed/": "the windowed runtime as a package: issue 17's branch splitting agents/windowed.py makes it",
}


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_path_it_names_exists(document: Path) -> None:
    named = set(_PATH.findall(document.read_text(encoding="utf-8")))
    assert named or document.name != "README.md"
    missing = sorted(path for path in named - NOT_OURS.keys() - COMING.keys() if not (REPO / path).exists())
    assert not missing, f"{document.name} names paths that do not exist: {missing}"


@pytest.mark.parametrize("path", sorted(COMING))
def test_paths_to_come(path: str) -> None:
    assert not (REPO / path).exists(), f"{path} exists now: take it off COMING"
    pytest.xfail(f"{path}: {COMING[path]}")
