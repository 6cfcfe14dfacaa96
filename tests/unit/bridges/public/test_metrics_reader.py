"""The key side of the metrics reader: which keys it reads (what a key says is contract.names'),
from the metric's description in the registry, whatever the metric."""

from __future__ import annotations

import pytest

from bridges.public.metrics_reader import key_filter
from contract.registry import MetricDescription, WindowDescription
from tables.errors import ConfigError
from tests.unit.contract.test_names import BAD_IDS

WINDOW = WindowDescription(kind="tumbling", size_seconds=60, step_seconds=60)
PER_STUDENT = MetricDescription(name="hints", key_fields=("student_id",), window=WINDOW)
PER_GAME = MetricDescription(name="wins", key_fields=("student_id", "game_id"), window=WINDOW)


@pytest.mark.parametrize("value", BAD_IDS)
def test_ids_that_could_address_other_keys_are_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="must be 1-64 characters"):
        key_filter(PER_STUDENT, value)
    with pytest.raises(ConfigError, match="must be 1-64 characters"):
        key_filter(PER_GAME, "s1", {"game_id": value})


@pytest.mark.parametrize(
    ("description", "student", "parts", "subjects"),
    [
        (PER_STUDENT, "s1", None, "$KV.metrics.hints.s1.*"),
        (PER_STUDENT, None, None, "$KV.metrics.hints.*.*"),
        (PER_GAME, "s1", None, "$KV.metrics.wins.s1.*.*"),
        (PER_GAME, "s1", {"game_id": "g1"}, "$KV.metrics.wins.s1.g1.*"),
    ],
)
def test_key_filter(
    description: MetricDescription, student: str | None, parts: dict[str, str] | None, subjects: str
) -> None:
    assert key_filter(description, student, parts) == subjects


def test_a_part_the_metric_is_not_keyed_by_is_refused_naming_its_key_fields() -> None:
    with pytest.raises(ConfigError, match="not a key field of hints after the first .those are: none"):
        key_filter(PER_STUDENT, "s1", {"game_id": "g1"})
    with pytest.raises(ConfigError, match="those are: game_id"):
        key_filter(PER_GAME, "s1", {"student_id": "s2"})
