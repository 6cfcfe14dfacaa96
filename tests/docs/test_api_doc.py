"""docs/api.md: the query bounds it states are the reader's (the examples run in tests/integration/test_docs.py)."""

from __future__ import annotations

from pathlib import Path

from bridges.public.metrics_reader import MAX_KEYED_WINDOWS, PROBE_WINDOWS, RECENT_WINDOWS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
QUERY = " ".join(DOC.split("## Query API", 1)[1].split("\n## ", 1)[0].split())


def test_the_query_costs_name_the_reader_s_bounds() -> None:
    assert f"at most **{MAX_KEYED_WINDOWS:,} windows**" in QUERY
    assert f"in the last {RECENT_WINDOWS} window lengths" in QUERY
    assert f"at most {PROBE_WINDOWS:,} windows" in QUERY
