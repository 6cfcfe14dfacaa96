"""The watermark: largest event time advanced by wall time, monotonic, and restorable."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tables.errors import StateError
from tables.watermark import Watermark

from .clock import T0, FakeClock


def test_empty_until_the_first_event() -> None:
    watermark = Watermark()
    assert watermark.value(T0) is None
    assert watermark.value_us(0) is None
    assert watermark.reaches_at_us(0) is None
    assert watermark.to_json() == {}


def test_advances_with_wall_time_so_idle_streams_progress() -> None:
    clock = FakeClock()
    watermark = Watermark()
    watermark.observe(1000.0, clock.now)
    assert watermark.value(clock.now) == 1000.0
    assert watermark.value(clock.advance(2.5)) == 1002.5
    assert watermark.value(clock.advance(60)) == 1062.5


def test_a_newer_event_raises_it_and_an_older_one_never_lowers_it() -> None:
    clock = FakeClock()
    watermark = Watermark()
    watermark.observe(1000.0, clock.now)
    watermark.observe(1010.0, clock.now)
    assert watermark.value(clock.now) == 1010.0
    watermark.observe(900.0, clock.advance(1))
    assert watermark.value(clock.now) == 1011.0


def test_a_newer_event_behind_the_advanced_watermark_does_not_lower_it() -> None:
    # Idle for 100 s after event 1000: the watermark is 1100. An event at 1050 (newer than any
    # seen, but behind the projection) must not pull it back to 1050.
    clock = FakeClock()
    watermark = Watermark()
    watermark.observe(1000.0, clock.now)
    watermark.observe(1050.0, clock.advance(100))
    assert watermark.value(clock.now) == 1100.0
    assert watermark.value(clock.advance(1)) == 1101.0


def test_a_wall_clock_stepping_back_does_not_lower_it_below_the_last_anchor() -> None:
    watermark = Watermark()
    watermark.observe_us(1_000, now_us=10_000)
    watermark.advance_us(10_500)
    assert watermark.value_us(10_500) == 1_500
    assert watermark.value_us(9_000) == 1_500
    watermark.observe_us(1_200, now_us=9_000)
    assert watermark.value_us(9_000) == 1_500
    assert watermark.value_us(10_600) == 1_600


def test_advance_preserves_every_later_value() -> None:
    watermark = Watermark()
    watermark.observe_us(1_000, now_us=10_000)
    expected = {now: watermark.value_us(now) for now in range(10_050, 10_200, 7)}
    watermark.advance_us(10_050)
    watermark.advance_us(10_020)  # earlier than the anchor: no effect
    assert {now: watermark.value_us(now) for now in expected} == expected
    assert watermark.to_json() == {"base_us": 1_050, "wall_us": 10_050}


def test_reaches_at_tells_when_a_target_is_reached() -> None:
    watermark = Watermark()
    watermark.observe_us(1_000, now_us=50_000)
    assert watermark.reaches_at_us(1_000) == 50_000
    assert watermark.reaches_at_us(900) == 50_000
    assert watermark.reaches_at_us(1_600) == 50_600
    assert watermark.value_us(50_600) == 1_600


Step = tuple[int, int]  # (event time, wall-clock increment), both microseconds


@given(st.lists(st.tuples(st.integers(-(10**9), 10**9), st.integers(0, 10**6)), min_size=1, max_size=40))
def test_value_is_the_max_projection_and_never_decreases(steps: list[Step]) -> None:
    watermark = Watermark()
    now = 0
    seen: list[tuple[int, int]] = []
    previous: int | None = None
    for event_us, elapsed in steps:
        now += elapsed
        watermark.observe_us(event_us, now)
        seen.append((event_us, now))
        value = watermark.value_us(now)
        assert value == max(t + (now - arrived) for t, arrived in seen)
        assert previous is None or value >= previous
        assert watermark.value_us(now + 1) == value + 1
        previous = value


def test_json_snapshot_round_trip() -> None:
    clock = FakeClock()
    watermark = Watermark()
    watermark.observe(1000.25, clock.now)
    restored = Watermark.from_json(json.loads(json.dumps(watermark.to_json())))
    later = clock.advance(30)
    assert restored.value(later) == watermark.value(later) == 1030.25
    assert Watermark.from_json({}).value(later) is None
    assert repr(restored).startswith("Watermark({'base_us': 1000250000")


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"base_us": 1},
        {"base_us": 1, "wall_us": "2"},
        {"base_us": 1.0, "wall_us": 2},
        {"base_us": True, "wall_us": 2},
        {"base_us": 1, "wall_us": 2, "extra": 3},
    ],
)
def test_from_json_refuses_what_to_json_cannot_produce(data: Any) -> None:
    with pytest.raises(StateError) as caught:
        Watermark.from_json(data, key="m.watermark")
    assert caught.value.key == "m.watermark"
