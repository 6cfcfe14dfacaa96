"""What the generic view keeps: each metric version's keys with their newest final windows, in
order, bounded, versions apart, whatever the metric and whatever its values."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.dashboard.generic.state import KeyChange, KeyedMetric, KeyedMetrics, key_of
from app.dashboard.state import Window


def window(key: str, start: int, final: bool = True, **values: Any) -> Window | None:
    raw = json.dumps({"metric": "hints", "final": final, "events": 1, "values": values}).encode()
    return Window.final(key, start, raw)


def put(metric: KeyedMetric, key: str, start: int, **values: Any) -> list[str]:
    made = window(f"{metric.series}.{key}.{start}", start, **values)
    assert made is not None
    return metric.put(key, made)


def test_only_final_json_objects_are_windows() -> None:
    assert window("hints.s1.0", 0, hints=1) is not None
    assert window("hints.s1.0", 0, final=False, hints=1) is None
    assert Window.final("hints.s1.0", 0, b"not json") is None
    assert Window.final("hints.s1.0", 0, b"[1, 2]") is None
    assert Window.final("hints.s1.0", 0, b'{"final": "true"}') is None  # true, not a string that says so


def test_a_key_shows_its_newest_window_whatever_order_windows_come_in() -> None:
    metric = KeyedMetric("hints")
    assert put(metric, "s1", 120, hints=3) == ["s1"]
    assert put(metric, "s1", 60, hints=1) == ["s1"]  # an older window, late: kept for history
    latest = metric.latest("s1")
    assert latest is not None and (latest.start, latest.values) == (120, {"hints": 3})
    assert put(metric, "s1", 120, hints=3) == []  # the same window again changes nothing
    assert put(metric, "s1", 120, hints=4) == ["s1"]  # a new value of it replaces it
    series = metric.windows("s1")
    assert series is not None and [w.start for w in series.recent()] == [60, 120]


def test_windows_per_key_are_bounded_by_the_history() -> None:
    metric = KeyedMetric("hints", history=3)
    for start in range(0, 100, 10):
        put(metric, "s1", start, hints=start)
    series = metric.windows("s1")
    assert series is not None and [w.start for w in series.recent()] == [70, 80, 90]
    assert put(metric, "s1", 0, hints=0) == []  # older than everything kept


def test_keys_are_bounded_and_the_quietest_is_forgotten_first() -> None:
    metric = KeyedMetric("hints", limit=3)
    for key in ("c", "a", "b"):
        put(metric, key, 0, hints=1)
    put(metric, "c", 60, hints=2)  # c changed last: a is now the quietest
    assert put(metric, "d", 0, hints=1) == ["d", "a"]
    assert (len(metric), metric.roster.ids, metric.latest("a")) == (3, ["b", "c", "d"], None)
    # A key forgotten and seen again comes back as new.
    assert put(metric, "a", 120, hints=5) == ["a", "b"]
    assert metric.roster.ids == ["a", "c", "d"]


def test_at_least_one_key_is_kept() -> None:
    with pytest.raises(ValueError, match="at least 1 key"):
        KeyedMetric("hints", limit=0)
    with pytest.raises(ValueError, match="at least 1 key"):
        KeyedMetrics(limit=0)


def test_versions_are_kept_apart_by_their_series() -> None:
    metrics = KeyedMetrics()
    one, two = window("hints.s1.0", 0, hints=1), window("hints_v2.s1.0", 0, hints=100)
    assert one is not None and two is not None
    assert metrics.put("hints", ("s1",), one) == [KeyChange("hints", "s1")]
    assert metrics.put("hints_v2", ("s1",), two) == [KeyChange("hints_v2", "s1")]
    first, second = metrics.metric("hints"), metrics.metric("hints_v2")
    assert first is not None and second is not None
    assert (first.name, first.version, second.name, second.version) == ("hints", 1, "hints", 2)
    assert first.latest("s1") is one and second.latest("s1") is two
    assert metrics.metric("hints_v3") is None


def test_values_no_description_names_are_kept_as_stored() -> None:
    metric = KeyedMetric("hints")
    put(metric, "s1", 0, hints=1, surprise={"nested": [1, None]}, note="<b>hi</b>")
    latest = metric.latest("s1")
    assert latest is not None and latest.values == {"hints": 1, "surprise": {"nested": [1, None]}, "note": "<b>hi</b>"}


def test_a_students_keys_are_found_by_their_first_part_alone() -> None:
    metric = KeyedMetric("games")
    for key in ("s1", "s1.g1", "s1.g2", "s1-x.g1", "s10.g1", "s0.g9"):
        put(metric, key, 0, games=1)
    assert metric.keys_of("s1", 10) == ["s1", "s1.g1", "s1.g2"]
    assert metric.keys_of("s1", 2) == ["s1", "s1.g1"]
    assert metric.keys_of("s1-x", 10) == ["s1-x.g1"]
    assert metric.keys_of("s2", 10) == []
    assert KeyChange("games", "s1.g1").first_part == "s1"


@pytest.mark.parametrize(("parts", "key"), [(("s1",), "s1"), (("s1", "g-2"), "s1.g-2")])
def test_a_key_is_spelled_as_in_the_kv_key(parts: tuple[str, ...], key: str) -> None:
    assert key_of(parts) == key
