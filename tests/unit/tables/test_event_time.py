"""Event times: the accepted forms, exactly converted, and clear refusals for the rest."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tables.errors import ConfigError, InvalidEventError
from tables.event_time import event_time_reader, parse_event_time
from tables.fields import MISSING

T0_US = 1_714_557_600_000_000  # 2024-05-01T10:00:00Z


class Level(enum.IntEnum):
    EPOCH = 0


VALID = [
    pytest.param(0, 0, id="int-epoch"),
    pytest.param(1_714_557_600, T0_US, id="int-seconds"),
    pytest.param(1_714_557_600.25, T0_US + 250_000, id="float-seconds"),
    pytest.param(-1.5, -1_500_000, id="pre-1970-float"),
    pytest.param(Level.EPOCH, 0, id="int-subclass"),
    pytest.param(-62_135_596_800, -62_135_596_800_000_000, id="year-1"),
    pytest.param("1970-01-01T00:00:00Z", 0, id="rfc3339-z"),
    pytest.param("2024-05-01T10:00:00Z", T0_US, id="rfc3339-real"),
    pytest.param("2024-05-01t10:00:00z", T0_US, id="rfc3339-lowercase"),
    pytest.param("2024-05-01 10:00:00Z", T0_US, id="rfc3339-space"),
    pytest.param("2024-05-01T12:00:00+02:00", T0_US, id="rfc3339-plus-offset"),
    pytest.param("2024-05-01T05:30:00-04:30", T0_US, id="rfc3339-minus-offset"),
    pytest.param("2024-05-01T10:00:00.25Z", T0_US + 250_000, id="rfc3339-fraction"),
    pytest.param("2024-05-01T10:00:00.000001Z", T0_US + 1, id="rfc3339-microsecond"),
    pytest.param("2024-05-01T10:00:00.0000004Z", T0_US, id="rfc3339-nanos-round-down"),
    pytest.param("2024-05-01T10:00:00.0000005Z", T0_US + 1, id="rfc3339-nanos-round-half-up"),
    pytest.param("2024-05-01T09:59:59.9999999Z", T0_US, id="rfc3339-nanos-carry-into-second"),
    pytest.param("1969-12-31T23:59:59Z", -1_000_000, id="rfc3339-pre-1970"),
    pytest.param("0001-01-01T00:00:00Z", -62_135_596_800_000_000, id="rfc3339-year-1"),
    pytest.param("9999-12-31T23:59:59.999999Z", 253_402_300_799_999_999, id="rfc3339-year-9999"),
    pytest.param(datetime(2024, 5, 1, 10, tzinfo=UTC), T0_US, id="datetime-utc"),
    pytest.param(datetime(2024, 5, 1, 12, tzinfo=timezone(timedelta(hours=2))), T0_US, id="datetime-offset"),
    pytest.param(datetime(2024, 5, 1, 10, 0, 0, 7, tzinfo=UTC), T0_US + 7, id="datetime-microseconds"),
]


@pytest.mark.parametrize(("value", "micros"), VALID)
def test_accepted_forms(value: Any, micros: int) -> None:
    assert parse_event_time(value, "ts") == micros


INVALID = [
    pytest.param(MISSING, "the event has no such field", id="missing"),
    pytest.param(None, "a NoneType", id="null"),
    pytest.param(True, "a bool", id="bool"),
    pytest.param(float("nan"), "NaN", id="nan"),
    pytest.param(float("inf"), "out of range", id="inf"),
    pytest.param(1_714_557_600_000, "milliseconds", id="epoch-milliseconds"),
    pytest.param(-62_135_596_801, "out of range", id="before-year-1"),
    pytest.param("yesterday", "not an RFC 3339 timestamp", id="words"),
    pytest.param("", "not an RFC 3339 timestamp", id="empty"),
    pytest.param("1714557600", "not an RFC 3339 timestamp", id="digits-string"),
    pytest.param("2024-05-01T10:00:00", "not an RFC 3339 timestamp", id="no-offset"),
    pytest.param("2024-05-01", "not an RFC 3339 timestamp", id="date-only"),
    pytest.param("2024-05-01T10:00Z", "not an RFC 3339 timestamp", id="no-seconds"),
    pytest.param("2024-W18-3T10:00:00Z", "not an RFC 3339 timestamp", id="week-date"),
    pytest.param("20240501T100000Z", "not an RFC 3339 timestamp", id="basic-format"),
    pytest.param(" 2024-05-01T10:00:00Z", "not an RFC 3339 timestamp", id="leading-space"),
    pytest.param("2024-05-01T10:00:00.Z", "not an RFC 3339 timestamp", id="empty-fraction"),
    pytest.param(
        "\u0662\u0660\u0662\u0664-05-01T10:00:00Z", "not an RFC 3339 timestamp", id="non-ascii-digits"
    ),
    pytest.param("2024-02-30T00:00:00Z", "not a valid date and time", id="february-30"),
    pytest.param("2024-05-01T24:00:00Z", "not a valid date and time", id="hour-24"),
    pytest.param("2024-05-01T10:00:60Z", "not a valid date and time", id="leap-second"),
    pytest.param("0000-01-01T00:00:00Z", "not a valid date and time", id="year-0"),
    pytest.param("2024-05-01T10:00:00+24:00", "not a valid UTC offset", id="offset-hours"),
    pytest.param("2024-05-01T10:00:00+01:60", "not a valid UTC offset", id="offset-minutes"),
    pytest.param(datetime(2024, 5, 1, 10), "a naive datetime", id="naive-datetime"),
    pytest.param(date(2024, 5, 1), "a date", id="date"),
    pytest.param(Decimal(1714557600), "a Decimal", id="decimal"),
    pytest.param([1714557600], "a list", id="list"),
]


@pytest.mark.parametrize(("value", "problem"), INVALID)
def test_refusals_name_the_field_the_value_and_the_problem(value: Any, problem: str) -> None:
    with pytest.raises(InvalidEventError) as caught:
        parse_event_time(value, "data.occurred_at")
    error = caught.value
    assert error.field == "data.occurred_at"
    assert error.value is value
    assert problem in error.problem
    assert str(error).startswith(f"Event field 'data.occurred_at' has value {value!r}: ")


@given(
    st.datetimes(
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=5, minutes=45)), timezone(-timedelta(hours=11))]
        )
    )
)
def test_a_datetime_and_its_isoformat_give_the_same_micros(moment: datetime) -> None:
    exact = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    assert parse_event_time(moment, "ts") == exact
    assert parse_event_time(moment.isoformat(), "ts") == exact


def test_reader_resolves_a_dotted_path() -> None:
    read = event_time_reader("meta.ts", owner="MetricDefinition")
    assert read({"meta": {"ts": "1970-01-01T00:00:01Z"}}) == 1_000_000
    with pytest.raises(InvalidEventError) as caught:
        read({"meta": {}})
    assert caught.value.field == "meta.ts"
    assert caught.value.value is MISSING


def test_reader_rejects_a_bad_path_at_definition_time() -> None:
    with pytest.raises(ConfigError) as caught:
        event_time_reader("meta..ts", owner="MetricDefinition")
    assert caught.value.field == "time_field"


def test_seconds_seen_before_and_after_the_cache_fills_give_the_same_micros() -> None:
    # More distinct seconds than the parser keeps, each twice (once to fill, once to hit), then
    # the first ones again after the cache was cleared: every answer is the datetime's.
    start = datetime(2024, 5, 1, tzinfo=UTC)
    moments = [start + timedelta(seconds=n, microseconds=250_000) for n in range(10_000)]
    for moment in (*moments, *moments, *moments[:100]):
        text = moment.isoformat().replace("+00:00", "Z")
        assert parse_event_time(text, "t") == (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def test_an_impossible_date_is_refused_every_time_it_comes() -> None:
    # A refused date-time is not remembered as a valid one: the second attempt is judged again.
    for _ in range(2):
        with pytest.raises(InvalidEventError, match="not a valid date and time"):
            parse_event_time("2024-02-30T10:00:00Z", "t")
