"""The key side of the metrics reader: which keys it reads (what a key says is contract.names')."""

from __future__ import annotations

import pytest

from bridges.public.metrics_reader import key_filters
from tables.errors import ConfigError
from tests.unit.contract.test_names import BAD_IDS


@pytest.mark.parametrize("value", BAD_IDS)
def test_ids_that_could_address_other_keys_are_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="must be 1-64 characters"):
        key_filters("engagement", value)
    with pytest.raises(ConfigError, match="must be 1-64 characters"):
        key_filters("outcomes", "s1", value)


@pytest.mark.parametrize(
    ("metric", "student", "game", "filters"),
    [
        ("progression", "s1", None, ["$KV.metrics.progression.s1.*"]),
        ("outcomes", "s1", None, ["$KV.metrics.outcomes.s1.*.*"]),
        ("outcomes", "s1", "g1", ["$KV.metrics.outcomes.s1.g1.*"]),
        (None, "s1", None, ["$KV.metrics.engagement.s1.*", "$KV.metrics.outcomes.s1.*.*", "$KV.metrics.progression.s1.*"]),
        (None, None, None, ["$KV.metrics.engagement.*.*", "$KV.metrics.outcomes.*.*.*", "$KV.metrics.progression.*.*"]),
        (None, "s1", "g1", ["$KV.metrics.outcomes.s1.g1.*"]),
    ],
)
def test_key_filters(metric: str | None, student: str | None, game: str | None, filters: list[str]) -> None:
    assert key_filters(metric, student, game) == filters


def test_key_filters_refuse_a_game_for_other_metrics() -> None:
    with pytest.raises(ConfigError, match="does not apply to progression"):
        key_filters("progression", "s1", "g1")
