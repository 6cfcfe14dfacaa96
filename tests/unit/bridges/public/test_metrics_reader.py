"""The key side of the metrics reader: which keys it reads, and what a key says."""

from __future__ import annotations

import pytest

from bridges.public.metrics_reader import key_filters, parse_metrics_key
from bridges.public.streams import metrics_key
from tables.errors import ConfigError

from .test_streams import BAD_IDS


@pytest.mark.parametrize("value", BAD_IDS)
def test_ids_that_could_address_other_keys_are_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="must be 1-64 characters"):
        key_filters("engagement", value)
    with pytest.raises(ConfigError, match="must be 1-64 characters"):
        key_filters("outcomes", "s1", value)


@pytest.mark.parametrize(
    ("key", "parsed"),
    [
        ("progression.s1.60", ("progression", "s1", None, 60)),
        ("outcomes.s1.g1.120", ("outcomes", "s1", "g1", 120)),
        ("outcomes.s1.120", None),
        ("engagement.s1.g1.120", None),
        ("engagement.s1.soon", None),
        ("mastery.s1.60", None),
    ],
)
def test_parsing_keys(key: str, parsed: tuple[str, str, str | None, int] | None) -> None:
    assert parse_metrics_key(key) == parsed
    if parsed is not None:
        metric, student, game, start = parsed
        assert metrics_key(metric, student, start, game_id=game) == key


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
