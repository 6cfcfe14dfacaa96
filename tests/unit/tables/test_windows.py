"""Window math from tables of cases: alignment, boundaries, hopping overlaps, pre-1970, DST, and
the window starts of a range (the keys a reader computes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tables.errors import ConfigError
from tables.windows import Hopping, Session, Tumbling, window_ranges, window_starts


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> float:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC).timestamp()


HOUR = 3600.0
DAY = 86_400.0

RANGES = [
    # (t, size, step, expected ranges) -- tumbling when size == step
    pytest.param(0, 60, 60, [(0.0, 60.0)], id="epoch-start"),
    pytest.param(59.999999, 60, 60, [(0.0, 60.0)], id="last-microsecond-of-window"),
    pytest.param(60, 60, 60, [(60.0, 120.0)], id="at-end-belongs-to-next"),
    pytest.param(60.000001, 60, 60, [(60.0, 120.0)], id="just-after-end"),
    pytest.param(-1, 60, 60, [(-60.0, 0.0)], id="pre-1970-floors-down"),
    pytest.param(-60, 60, 60, [(-60.0, 0.0)], id="pre-1970-at-start"),
    pytest.param(-60.000001, 60, 60, [(-120.0, -60.0)], id="pre-1970-just-before-start"),
    pytest.param(0.3, 0.1, 0.1, [(0.3, 0.4)], id="float-trap-0.3//0.1"),
    pytest.param(0.7, 0.1, 0.1, [(0.7, 0.8)], id="float-trap-0.7/0.1"),
    pytest.param(
        utc(2024, 5, 1, 10, 0, 30),
        timedelta(minutes=1),
        timedelta(minutes=1),
        [(utc(2024, 5, 1, 10, 0), utc(2024, 5, 1, 10, 1))],
        id="timedelta-sizes",
    ),
    pytest.param(
        utc(2024, 5, 1, 10, 1),
        60,
        60,
        [(utc(2024, 5, 1, 10, 1), utc(2024, 5, 1, 10, 2))],
        id="real-epoch-at-boundary",
    ),
    pytest.param(
        utc(2024, 5, 1, 10, 0, 59, 999999),
        60,
        60,
        [(utc(2024, 5, 1, 10, 0), utc(2024, 5, 1, 10, 1))],
        id="real-epoch-last-microsecond",
    ),
    # UTC epoch alignment ignores local DST: Europe moved its clocks at 2024-03-31T01:00Z and the
    # US at 2024-03-10T07:00Z; hour and day windows still start on UTC hours and midnights.
    pytest.param(
        utc(2024, 3, 31, 1, 30), HOUR, HOUR, [(utc(2024, 3, 31, 1), utc(2024, 3, 31, 2))], id="eu-dst-hour"
    ),
    pytest.param(
        utc(2024, 3, 31, 23, 59, 59), DAY, DAY, [(utc(2024, 3, 31), utc(2024, 4, 1))], id="eu-dst-day"
    ),
    pytest.param(utc(2024, 3, 10, 7, 0), DAY, DAY, [(utc(2024, 3, 10), utc(2024, 3, 11))], id="us-dst-day"),
    pytest.param(utc(2024, 2, 29, 12), DAY, DAY, [(utc(2024, 2, 29), utc(2024, 3, 1))], id="leap-day"),
    # hopping: every window starting at a multiple of step in (t - size, t]
    pytest.param(10, 10, 5, [(5.0, 15.0), (10.0, 20.0)], id="hop-at-boundary"),
    pytest.param(12, 10, 5, [(5.0, 15.0), (10.0, 20.0)], id="hop-two-overlaps"),
    pytest.param(7, 10, 3, [(0.0, 10.0), (3.0, 13.0), (6.0, 16.0)], id="hop-step-not-dividing-size"),
    pytest.param(9, 10, 3, [(0.0, 10.0), (3.0, 13.0), (6.0, 16.0), (9.0, 19.0)], id="hop-four-windows"),
    pytest.param(10, 10, 3, [(3.0, 13.0), (6.0, 16.0), (9.0, 19.0)], id="hop-end-excluded"),
    pytest.param(-1, 10, 5, [(-10.0, 0.0), (-5.0, 5.0)], id="hop-pre-1970"),
    pytest.param(0, 10, 5, [(-5.0, 5.0), (0.0, 10.0)], id="hop-at-epoch"),
    pytest.param(59, 60, 1, [(float(s), float(s + 60)) for s in range(60)], id="hop-sixty-windows"),
]


@pytest.mark.parametrize(("t", "size", "step", "expected"), RANGES)
def test_window_ranges(t: float, size: Any, step: Any, expected: list[tuple[float, float]]) -> None:
    assert window_ranges(t, size, step) == expected


@pytest.mark.parametrize(("t", "size", "step", "expected"), RANGES)
def test_window_types_agree_with_window_ranges(
    t: float, size: Any, step: Any, expected: list[tuple[float, float]]
) -> None:
    t_us = round(t * 1_000_000)
    hopping = Hopping(size, step)
    assert [(s / 1e6, e / 1e6) for s, e in hopping.ranges_us(t_us)] == expected
    if size == step:
        assert [(s / 1e6, e / 1e6) for s, e in Tumbling(size).ranges_us(t_us)] == expected


@given(
    t_us=st.integers(min_value=-(10**15), max_value=10**16),
    size_us=st.integers(min_value=1, max_value=10**7),
    data=st.data(),
)
def test_ranges_match_brute_force(t_us: int, size_us: int, data: st.DataObject) -> None:
    # At most 64 windows per time, to keep each example fast.
    step_us = data.draw(st.integers(min_value=-(-size_us // 64), max_value=size_us))
    # Brute force: walk the multiples of step around t and keep those whose window holds t.
    first_k = (t_us - size_us) // step_us - 1
    expected = [
        (k * step_us, k * step_us + size_us)
        for k in range(first_k, t_us // step_us + 2)
        if k * step_us <= t_us < k * step_us + size_us
    ]
    assert Hopping(size_us / 1e6, step_us / 1e6).ranges_us(t_us) == expected
    if step_us == size_us:
        assert Tumbling(size_us / 1e6).ranges_us(t_us) == expected


STARTS = [
    # (start_from, start_to, size, expected starts): from inclusive, to exclusive, by window start
    pytest.param(0, 180, 60, [0, 60, 120], id="aligned-bounds"),
    pytest.param(1, 180, 60, [60, 120], id="from-inside-a-window-skips-it"),
    pytest.param(59, 181, 60, [60, 120, 180], id="to-just-after-a-start-includes-it"),
    pytest.param(60, 60, 60, [], id="empty-range"),
    pytest.param(120, 60, 60, [], id="to-before-from"),
    pytest.param(61, 119, 60, [], id="inside-one-window-no-start"),
    pytest.param(-130, 0, 60, [-120, -60], id="pre-1970"),
    pytest.param(-60, 1, 60, [-60, 0], id="across-the-epoch"),
    # UTC epoch alignment ignores local DST (Europe moved its clocks at 2024-03-31T01:00Z): a day of
    # hour windows is 24 starts on UTC hours, and day windows start at UTC midnights.
    pytest.param(
        int(utc(2024, 3, 31)), int(utc(2024, 4, 1)), 3600,
        [int(utc(2024, 3, 31)) + 3600 * h for h in range(24)], id="eu-dst-day-of-hours",
    ),
    pytest.param(
        int(utc(2024, 3, 30, 12)), int(utc(2024, 4, 1, 12)), 86_400,
        [int(utc(2024, 3, 31)), int(utc(2024, 4, 1))], id="days-start-at-utc-midnight",
    ),
]


@pytest.mark.parametrize(("start_from", "start_to", "size", "expected"), STARTS)
def test_window_starts(start_from: int, start_to: int, size: int, expected: list[int]) -> None:
    starts = window_starts(start_from, start_to, size)
    assert list(starts) == expected
    assert len(starts) == len(expected)
    assert list(reversed(starts)) == expected[::-1]


@given(
    start_from=st.integers(min_value=-(10**10), max_value=10**10),
    length=st.integers(min_value=-100, max_value=5_000),
    size=st.integers(min_value=1, max_value=4_000),
)
def test_window_starts_match_brute_force(start_from: int, length: int, size: int) -> None:
    start_to = start_from + length
    expected = [s for s in range(start_from, start_to) if s % size == 0]
    assert list(window_starts(start_from, start_to, size)) == expected


BAD_ARGUMENTS = [
    # (factory, field, value, problem fragment)
    pytest.param(lambda: Tumbling(0), "size", 0, "must be > 0", id="zero-size"),
    pytest.param(lambda: Tumbling(-5), "size", -5, "must be > 0", id="negative-size"),
    pytest.param(lambda: Tumbling(timedelta(0)), "size", timedelta(0), "must be > 0", id="zero-timedelta"),
    pytest.param(lambda: Tumbling(1e-7), "size", 1e-7, "at least one microsecond", id="rounds-to-zero"),
    pytest.param(lambda: Tumbling(True), "size", True, "timedelta or a number", id="bool-size"),
    pytest.param(lambda: Tumbling("60"), "size", "60", "timedelta or a number", id="string-size"),  # type: ignore[arg-type]
    pytest.param(lambda: Tumbling(float("nan")), "size", "nan", "finite", id="nan-size"),
    pytest.param(lambda: Tumbling(float("inf")), "size", "inf", "finite", id="inf-size"),
    pytest.param(lambda: Tumbling(1e30), "size", 1e30, "at most", id="huge-size"),
    pytest.param(lambda: Hopping(10, 0), "step", 0, "must be > 0", id="zero-step"),
    pytest.param(lambda: Hopping(0, 1), "size", 0, "must be > 0", id="hopping-zero-size"),
    pytest.param(lambda: Hopping(10, 11), "step", 11, "must be <= size", id="step-above-size"),
    pytest.param(lambda: Session(0), "gap", 0, "must be > 0", id="zero-gap"),
    pytest.param(
        lambda: Session(timedelta(seconds=-1)), "gap", timedelta(seconds=-1), "must be > 0", id="negative-gap"
    ),
    pytest.param(
        lambda: window_ranges(0, 5, 10), "step", 10, "must be <= size", id="function-step-above-size"
    ),
    pytest.param(lambda: window_starts(0, 60, 0), "size", 0, "whole number of seconds > 0", id="starts-zero-size"),
    pytest.param(lambda: window_starts(0, 60, 1.5), "size", 1.5, "whole number", id="starts-fractional-size"),
]


@pytest.mark.parametrize(("factory", "field", "value", "problem"), BAD_ARGUMENTS)
def test_bad_arguments_raise_config_error_naming_the_field(
    factory: Any, field: str, value: Any, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        factory()
    assert caught.value.field == field
    assert problem in caught.value.problem
    assert f"'{field}'" in str(caught.value)
    if isinstance(value, str) and value in ("nan", "inf"):
        assert repr(caught.value.value) == value
    else:
        assert caught.value.value == value


@pytest.mark.parametrize(
    ("window", "same"),
    [
        (Tumbling(60), Tumbling(timedelta(minutes=1))),
        (Tumbling(1.5), Tumbling(timedelta(milliseconds=1500))),
        (Hopping(60, 15), Hopping(timedelta(minutes=1), timedelta(seconds=15))),
        (Session(300), Session(timedelta(minutes=5))),
    ],
)
def test_seconds_and_timedelta_give_equal_windows(window: Any, same: Any) -> None:
    assert window == same
    assert hash(window) == hash(same)


def test_windows_normalise_to_timedelta_and_integer_micros() -> None:
    hopping = Hopping(1.5, 0.25)
    assert (hopping.size, hopping.step) == (timedelta(seconds=1.5), timedelta(milliseconds=250))
    assert (hopping.size_us, hopping.step_us) == (1_500_000, 250_000)
    assert Session(2).gap_us == 2_000_000
    assert repr(Tumbling(60)) == "Tumbling(size=datetime.timedelta(seconds=60))"


def test_windows_are_frozen() -> None:
    window = Tumbling(60)
    with pytest.raises(AttributeError):
        window.size = timedelta(seconds=1)  # type: ignore[misc]
