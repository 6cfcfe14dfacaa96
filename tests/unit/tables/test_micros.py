"""Conversions between float epoch seconds and the integer microseconds all boundaries use."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tables.errors import ConfigError
from tables.micros import duration_micros, format_micros, from_micros, to_micros

# Epoch microseconds within 2**32 s of the epoch (1833-2106), where float seconds resolve them.
FLOAT_EXACT_MICROS = st.integers(min_value=-(2**32) * 1_000_000, max_value=2**32 * 1_000_000)


@given(FLOAT_EXACT_MICROS)
def test_to_micros_inverts_from_micros(micros: int) -> None:
    assert to_micros(from_micros(micros)) == micros


@pytest.mark.parametrize(
    ("seconds", "micros"),
    [
        (0, 0),
        (1, 1_000_000),
        (0.1, 100_000),
        (0.3, 300_000),
        (-1.5, -1_500_000),
        (1_714_557_600.000001, 1_714_557_600_000_001),
        (0.0000005, 0),  # half a microsecond rounds to even
        (0.0000015, 2),
    ],
)
def test_to_micros_rounds_to_the_nearest_microsecond(seconds: float, micros: int) -> None:
    assert to_micros(seconds) == micros


@pytest.mark.parametrize(
    ("micros", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (1_714_557_600_250_000, "2024-05-01T10:00:00.250000Z"),
        (-1, "1969-12-31T23:59:59.999999Z"),
    ],
)
def test_format_micros_is_rfc3339_utc(micros: int, text: str) -> None:
    assert format_micros(micros) == text


@pytest.mark.parametrize(
    ("value", "allow_zero", "micros"),
    [
        (timedelta(minutes=1), False, 60_000_000),
        (timedelta(microseconds=1), False, 1),
        (60, False, 60_000_000),
        (0.25, False, 250_000),
        (0, True, 0),
        (timedelta(0), True, 0),
    ],
)
def test_duration_micros(value: Any, allow_zero: bool, micros: int) -> None:
    assert duration_micros(value, owner="Owner", field="size", allow_zero=allow_zero) == micros


@pytest.mark.parametrize(
    ("value", "allow_zero", "problem"),
    [
        (0, False, "must be > 0 (at least one microsecond)"),
        (-1, True, "must be >= 0"),
        (timedelta(microseconds=-1), True, "must be >= 0"),
        (None, False, "must be a timedelta or a number of seconds"),
        (False, True, "must be a timedelta or a number of seconds"),
        (float("inf"), False, "must be a finite number of seconds"),
    ],
)
def test_duration_micros_rejects(value: Any, allow_zero: bool, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        duration_micros(value, owner="Owner", field="size", allow_zero=allow_zero)
    assert caught.value.problem == problem
    assert str(caught.value).startswith(f"Owner 'size' has value {value!r}: ")
