"""The event contract's ``occurred_at``: RFC 3339 with an offset, normalised to UTC, not too far ahead."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from contract.events import (
    validate_event,
)

from .samples import (
    FUTURE,
    INTERACTION,
    NOW,
    OCCURRED_AT,
    changed,
    problems,
)

TIME_CASES = [
    ("2024-05-01T10:00:00Z", datetime(2024, 5, 1, 10, tzinfo=UTC)),
    ("2024-05-01T10:00:00.123456Z", datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)),
    ("2024-05-01T10:00:00.5Z", datetime(2024, 5, 1, 10, 0, 0, 500000, tzinfo=UTC)),
    ("2024-05-01T12:00:00+02:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),
    ("2024-05-01T04:30:00-05:30", datetime(2024, 5, 1, 10, tzinfo=UTC)),
    ("2024-05-01T10:00:00+00:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),
    ("2024-05-01T10:00:00-00:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),
    ("2024-05-01t10:00:00z", datetime(2024, 5, 1, 10, tzinfo=UTC)),  # RFC 3339 allows lower case
    ("2024-05-02T09:59:00+23:59", datetime(2024, 5, 1, 10, tzinfo=UTC)),
    ("1999-12-31T23:59:59Z", datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC)),
]


@pytest.mark.parametrize(("text", "expected"), TIME_CASES)
def test_occurred_at_is_normalised_to_aware_utc(text: str, expected: datetime) -> None:
    event = validate_event(changed(INTERACTION, occurred_at=text), now=NOW)
    assert event.occurred_at == expected
    assert event.occurred_at.tzinfo is UTC
    assert event.timestamp == expected.timestamp()


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-01T10:00:00",  # naive
        "2024-05-01T10:00:00.000",
        "2024-05-01 10:00:00Z",
        "2024-05-01T10:00Z",
        "2024-05-01T10:00:00+0200",
        "2024-05-01T10:00:00+02",
        "2024-05-01T10:00:00 Z",
        "2024-05-01T10:00:00+24:00",
        "2024-05-01T10:00:00+01:60",
        "2024-05-01T10:00:00Z ",
        "2024-05-01",
        "20240501T100000Z",
        "2024-W18-3T10:00:00Z",
        "2024-02-30T10:00:00Z",
        "2024-05-01T24:00:00Z",
        "2024-05-01T23:59:60Z",  # leap second: valid RFC 3339, but no datetime can hold it
        "0000-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",  # before year 1 once in UTC
        "٢٠٢٤-05-01T10:00:00Z",
        "1714557600",
        "",
        "yesterday",
    ],
)
def test_occurred_at_must_be_rfc3339_with_an_offset(text: str) -> None:
    assert problems(changed(INTERACTION, occurred_at=text)) == [("occurred_at", OCCURRED_AT)]


@pytest.mark.parametrize("value", [1714557600, 1714557600.0, None, True, ["2024-05-01T10:00:00Z"]])
def test_occurred_at_must_be_a_string(value: Any) -> None:
    assert problems(changed(INTERACTION, occurred_at=value)) == [("occurred_at", OCCURRED_AT)]


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("2024-05-01T10:05:00Z", True),  # exactly 5 minutes ahead
        ("2024-05-01T10:05:01Z", False),  # 5 minutes and 1 second
        ("2024-05-01T10:05:00.001Z", False),
        ("2024-05-01T12:05:00+02:00", True),  # the rule compares instants, not wall clocks
        ("2024-05-01T12:05:01+02:00", False),
        ("2024-05-01T10:04:59-00:00", True),
        ("1970-01-01T00:00:00Z", True),  # the past is not limited
    ],
)
def test_occurred_at_at_most_5_minutes_ahead_of_now(text: str, valid: bool) -> None:
    assert problems(changed(INTERACTION, occurred_at=text)) == ([] if valid else [("occurred_at", FUTURE)])


def test_now_is_the_callers_clock_not_the_machines() -> None:
    event = changed(INTERACTION, occurred_at="2024-05-01T10:00:00Z")
    assert problems(event, now=NOW - 300) == []
    assert problems(event, now=NOW - 301) == [("occurred_at", FUTURE)]
    far_future = changed(INTERACTION, occurred_at="2200-01-01T00:00:00Z")
    assert problems(far_future, now=datetime(2199, 12, 31, 23, 55, tzinfo=UTC).timestamp()) == []


def test_python_callers_may_pass_aware_datetimes_but_not_naive_ones() -> None:
    aware = datetime.fromisoformat("2024-05-01T12:00:00+02:00")
    assert validate_event(changed(INTERACTION, occurred_at=aware), now=NOW).occurred_at == aware
    assert validate_event(changed(INTERACTION, occurred_at=aware), now=NOW).occurred_at.tzinfo is UTC
    naive = datetime(2024, 5, 1, 10)
    assert problems(changed(INTERACTION, occurred_at=naive)) == [("occurred_at", OCCURRED_AT)]
