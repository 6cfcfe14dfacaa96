"""Durations and sizes as settings write them, their spelling back in log lines, and bounds."""

from __future__ import annotations

import pytest

from bridges.limits import Limits, format_duration, format_size, parse_duration, parse_size
from tables.errors import ConfigError

DAY = 86400.0


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("7d", 7 * DAY),
        ("90d", 90 * DAY),
        ("12h", 12 * 3600.0),
        ("30m", 1800.0),
        ("45s", 45.0),
        ("3600", 3600.0),
        ("1.5", 1.5),
        ("1.5h", 5400.0),
        ("0.5d", 43200.0),
        (" 7d ", 7 * DAY),
        ("7 d", 7 * DAY),
        ("7D", 7 * DAY),
        ("10M", 600.0),  # minutes, whatever the case: durations have no months
        ("0", 0.0),
    ],
)
def test_a_duration_is_seconds_or_a_number_with_a_unit(raw: str, seconds: float) -> None:
    assert parse_duration(raw) == seconds


@pytest.mark.parametrize(
    "raw", ["", "d", "7x", "7w", "-5", "-1d", "1e3", "nan", "inf", "7d12h", "7.d", ".5d", "seven days", "1,5h"]
)
def test_anything_else_is_not_a_duration(raw: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(raw)


@pytest.mark.parametrize(
    ("raw", "size"),
    [
        ("-1", -1),
        ("0", 0),
        ("1048576", 1 << 20),
        ("512K", 512 << 10),
        ("512k", 512 << 10),
        ("512KB", 512 << 10),
        ("512KiB", 512 << 10),
        ("10M", 10 << 20),
        ("10G", 10 << 30),
        ("1T", 1 << 40),
        ("1.5G", 3 << 29),
        ("100B", 100),
        (" 2 G ", 2 << 30),
    ],
)
def test_a_size_is_bytes_or_a_number_with_a_unit_of_1024s(raw: str, size: int) -> None:
    assert parse_size(raw) == size


@pytest.mark.parametrize("raw", ["", "G", "10X", "10Gb2", "-2", "-1G", "1e9", "ten", "10 GB GB", "1,5G"])
def test_anything_else_is_not_a_size(raw: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(raw)


def test_a_size_must_come_to_whole_bytes() -> None:
    with pytest.raises(ValueError, match="not a whole number of bytes"):
        parse_size("1.3")


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(7 * DAY, "7d"), (36 * 3600.0, "36h"), (90 * 60.0, "90m"), (1.5, "1.5s"), (45.0, "45s"), (0.0, "unlimited")],
)
def test_durations_are_shown_in_their_largest_whole_unit(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown
    if seconds:
        assert parse_duration(shown) == seconds


@pytest.mark.parametrize(
    ("size", "shown"),
    [(-1, "unlimited"), (10 << 30, "10 GiB"), (64 << 20, "64 MiB"), (3 << 29, "1536 MiB"), (1000, "1000 B")],
)
def test_sizes_are_shown_in_their_largest_whole_unit(size: int, shown: str) -> None:
    assert format_size(size) == shown


@pytest.mark.parametrize(
    ("max_age", "max_bytes"), [(DAY, -1), (0.0, 1 << 20), (DAY, 1 << 20), (1.0, 1)]
)
def test_a_limit_has_an_age_a_byte_cap_or_both(max_age: float, max_bytes: int) -> None:
    assert Limits(max_age, max_bytes) == Limits(max_age=max_age, max_bytes=max_bytes)


@pytest.mark.parametrize(
    ("max_age", "max_bytes", "field", "problem"),
    [
        (0.0, -1, "max_age", "a stream needs a bound"),
        (-1.0, -1, "max_age", "must be a finite number of seconds >= 0"),
        (float("inf"), -1, "max_age", "must be a finite number of seconds >= 0"),
        (DAY, 0, "max_bytes", "must be -1 (no byte limit) or >= 1"),
        (DAY, -2, "max_bytes", "must be -1 (no byte limit) or >= 1"),
    ],
)
def test_a_limit_without_a_bound_or_with_a_bad_one_is_refused(
    max_age: float, max_bytes: int, field: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Limits(max_age, max_bytes)
    assert caught.value.field == field and problem in caught.value.problem
