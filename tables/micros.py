"""Time as integer microseconds since the Unix epoch (UTC): the unit every boundary is decided in.

Why integers: float seconds cannot hold most decimal fractions exactly (``0.1 + 0.2 != 0.3``), so
window boundaries computed on floats drift and an event exactly at a window end could land in the
wrong window. ``tables`` therefore takes and returns float epoch seconds only at its edges and
converts them once, with ``round(t * 1_000_000)``; all window, grace and watermark arithmetic is
done on ``int`` microseconds. Within 2**32 s of the epoch (the years 1833-2106) a float resolves
better than half a microsecond, so the conversion is exact to the microsecond and ``to_micros``
undoes ``from_micros``; further out, float seconds themselves cannot name every microsecond.
(Event times given as ints, RFC 3339 strings or datetimes are converted with integer arithmetic
and stay exact over the whole datetime range.)

Epoch seconds are UTC by definition, so nothing here (or in the window math built on it) depends on
a time zone or on daylight-saving transitions.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Final, TypeAlias

from tables.errors import ConfigError

__all__ = ["Duration", "MICROS_PER_SECOND", "duration_micros", "format_micros", "from_micros", "to_micros"]

MICROS_PER_SECOND: Final = 1_000_000

#: A length of time as callers write it: a ``timedelta`` or a number of seconds.
Duration: TypeAlias = timedelta | int | float

_ONE_MICRO: Final = timedelta(microseconds=1)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_DURATION_MICROS: Final = timedelta.max // _ONE_MICRO


def to_micros(seconds: float) -> int:
    """Float (or int) epoch seconds -> int microseconds, rounded to the nearest microsecond."""
    return round(seconds * MICROS_PER_SECOND)


def from_micros(micros: int) -> float:
    """Int microseconds -> float epoch seconds (the nearest float; ``to_micros`` inverts it)."""
    return micros / MICROS_PER_SECOND


def format_micros(micros: int) -> str:
    """Epoch microseconds as an RFC 3339 UTC string, for messages people read."""
    return (_EPOCH + timedelta(microseconds=micros)).isoformat().replace("+00:00", "Z")


def duration_micros(value: Duration, *, owner: str, field: str, allow_zero: bool = False) -> int:
    """Validate a duration argument and return it in whole microseconds.

    ``owner`` and ``field`` name the argument in the :class:`ConfigError`, e.g.
    ``Tumbling 'size' has value 0: must be > 0``. Seconds are rounded to the nearest microsecond,
    so a positive value below half a microsecond is rejected rather than silently becoming zero.
    """
    if isinstance(value, timedelta):
        micros = value // _ONE_MICRO
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ConfigError(field, value, "must be a finite number of seconds", kind=owner)
        micros = to_micros(value)
    else:
        raise ConfigError(field, value, "must be a timedelta or a number of seconds", kind=owner)
    if micros > _MAX_DURATION_MICROS:
        raise ConfigError(field, value, f"must be at most {timedelta.max}", kind=owner)
    if micros < 0 or (micros == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0 (at least one microsecond)"
        raise ConfigError(field, value, f"must be {bound}", kind=owner)
    return micros
