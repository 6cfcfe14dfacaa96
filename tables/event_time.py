"""An event's time, read from the field the metric names, as int epoch microseconds (UTC).

Accepted values, and why the others are refused:

- a timezone-aware ``datetime``. A naive one is refused: it is local time of *some* zone, and
  guessing (UTC? the server's zone?) would shift every window it lands in.
- an RFC 3339 string with an offset (``2024-05-01T10:00:00.250Z``, ``...+02:00``; ``T``, ``t`` or
  a space between date and time). Parsed here, strictly, because ``datetime.fromisoformat`` also
  takes week dates, missing seconds and offset-less strings. Fractions finer than a microsecond
  are rounded to the nearest microsecond.
- epoch seconds as ``int`` or ``float`` (``bool`` is not a number here). Values outside the years
  1-9999 are refused: the usual cause is epoch *milliseconds* sent as seconds.

Anything else raises :class:`InvalidEventError` naming the field, the value and the problem.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from tables.errors import InvalidEventError
from tables.fields import MISSING, field_reader
from tables.micros import MICROS_PER_SECOND, to_micros

__all__ = ["event_time_reader", "parse_event_time"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH: Final = datetime(1970, 1, 1)
_ONE_MICRO: Final = timedelta(microseconds=1)
# The datetime range, in epoch seconds: 0001-01-01T00:00:00Z <= t < 10000-01-01T00:00:00Z.
_MIN_SECONDS: Final = -62_135_596_800
_END_SECONDS: Final = 253_402_300_800
_EXPECTED: Final = (
    "expected a timezone-aware datetime, an RFC 3339 string with a UTC offset, "
    "or epoch seconds (int or float)"
)
_RFC3339: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:[Zz]|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


def event_time_reader(time_field: str, *, owner: str) -> Callable[[Any], int]:
    """Compile ``time_field`` (a dotted path) into ``event -> epoch microseconds``."""
    read = field_reader(time_field, owner=owner, argument="time_field")

    def read_time(event: Any) -> int:
        return parse_event_time(read(event), time_field)

    return read_time


def parse_event_time(value: Any, field: str) -> int:
    """Epoch microseconds of ``value``, the content of event field ``field`` (named in errors)."""
    kind = type(value)
    # Numbers first: they are the common case on the per-event path.
    if kind is float or kind is int:
        if _MIN_SECONDS <= value < _END_SECONDS:
            return value * MICROS_PER_SECOND if kind is int else to_micros(value)
        raise InvalidEventError(field, value, _number_problem(value))
    if kind is str:
        return _parse_rfc3339(value, field)
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise InvalidEventError(field, value, "a naive datetime (no UTC offset); " + _EXPECTED)
        return (value - _EPOCH) // _ONE_MICRO
    if value is MISSING:
        raise InvalidEventError(field, value, "the event has no such field; " + _EXPECTED)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # A subclass such as IntEnum or numpy's float64: judge it by its plain numeric value.
        return parse_event_time(float(value) if isinstance(value, float) else int(value), field)
    raise InvalidEventError(field, value, f"a {kind.__name__}; {_EXPECTED}")


def _number_problem(value: float) -> str:
    if math.isnan(value):
        return "not a number (NaN)"
    return (
        "out of range: epoch seconds must lie in the years 1-9999 (were epoch milliseconds sent as seconds?)"
    )


def _parse_rfc3339(text: str, field: str) -> int:
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise InvalidEventError(
            field, text, "not an RFC 3339 timestamp with a UTC offset, e.g. 2024-05-01T10:00:00Z"
        )
    fraction, sign, offset_hours, offset_minutes = match.group(7, 8, 9, 10)
    micros = _naive_micros(text[:_DATE_TIME], field, text)
    if fraction is not None:
        # Round half up to whole microseconds in integers: float arithmetic would lose digits.
        scale = 10 ** len(fraction)
        micros += (int(fraction) * MICROS_PER_SECOND * 2 + scale) // (2 * scale)
    if sign is not None:
        if int(offset_hours) > 23 or int(offset_minutes) > 59:
            raise InvalidEventError(field, text, "not a valid UTC offset (hours 00-23, minutes 00-59)")
        offset = (int(offset_hours) * 60 + int(offset_minutes)) * 60 * MICROS_PER_SECOND
        micros += -offset if sign == "+" else offset
    return micros


#: ``YYYY-MM-DDTHH:MM:SS``, the part of a timestamp the pattern fixes to 19 characters
_DATE_TIME: Final = 19
#: date-time part -> its epoch microseconds as UTC; events come in bursts of nearby seconds, so
#: most are found here instead of building a datetime (half of the parse). Cleared when full.
_SECONDS_SEEN: dict[str, int] = {}
_SECONDS_KEPT: Final = 4096


def _naive_micros(date_time: str, field: str, text: str) -> int:
    micros = _SECONDS_SEEN.get(date_time)
    if micros is None:
        try:
            naive = datetime(
                int(date_time[0:4]), int(date_time[5:7]), int(date_time[8:10]),
                int(date_time[11:13]), int(date_time[14:16]), int(date_time[17:19]),
            )
        except ValueError as exc:
            raise InvalidEventError(field, text, f"not a valid date and time ({exc})") from None
        micros = (naive - _NAIVE_EPOCH) // _ONE_MICRO
        if len(_SECONDS_SEEN) >= _SECONDS_KEPT:
            _SECONDS_SEEN.clear()
        _SECONDS_SEEN[date_time] = micros
    return micros
