"""The backfill stage's check: every final of a version equals the oracle's, and there is no other."""

from __future__ import annotations

import json
from typing import Any

import pytest

from benchmarks.backfill import check_finals

ORACLE: dict[str, dict[str, Any]] = {
    "engagement.s1.100": {"metric": "engagement", "values": {"interactions": 3, "accuracy": 0.5}},
    "engagement.s2.100": {"metric": "engagement", "values": {"interactions": 1, "accuracy": None}},
}


def written(series: str, version: int, **changes: dict[str, Any] | None) -> dict[str, bytes]:
    """The oracle's finals as ``series`` writes them; ``changes`` replace (None: drop) a key's document."""
    out = {}
    for key, value in ORACLE.items():
        renamed = series + key.removeprefix("engagement")
        document = changes.get(key.split(".")[1], {**value, **({"version": version} if version > 1 else {})})
        if document is not None:
            out[renamed] = json.dumps(document).encode()
    return out


@pytest.mark.parametrize(("series", "version"), [("engagement", 1), ("engagement_v2", 2)])
def test_finals_equal_to_the_oracle_pass(series: str, version: int) -> None:
    values = {**written(series, version), **written("engagement_v3", 3), "progression.s1.100": b"{}"}
    check_finals(values, ORACLE, version=version, series=series)


FAULTS = [
    pytest.param({"s2": None}, "1 finals missing", id="a-final-missing"),
    pytest.param(
        {"s1": {"metric": "engagement", "version": 2, "values": {"interactions": 4, "accuracy": 0.5}}},
        "differs from the oracle", id="a-value-differs",
    ),
    pytest.param(
        {"s1": {"metric": "engagement", "values": {"interactions": 3, "accuracy": 0.5}}},
        "differs from the oracle", id="version-2-not-said",
    ),
]


@pytest.mark.parametrize(("changes", "error"), FAULTS)
def test_a_wrong_or_missing_final_fails_the_run(changes: dict[str, Any], error: str) -> None:
    with pytest.raises(AssertionError, match=error):
        check_finals(written("engagement_v2", 2, **changes), ORACLE, version=2, series="engagement_v2")


def test_a_final_the_oracle_does_not_have_fails_the_run() -> None:
    values = {**written("engagement_v2", 2), "engagement_v2.s3.100": b"{}"}
    with pytest.raises(AssertionError, match="1 unexpected"):
        check_finals(values, ORACLE, version=2, series="engagement_v2")
