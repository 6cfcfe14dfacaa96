"""Window shapes and the pure math that places a time into windows.

All windows are epoch-aligned in UTC and half-open, ``[start, end)``: a window of size 60 s starts
at every multiple of its step since 1970-01-01T00:00:00Z, whatever the local time zone or the
daylight-saving date, and an event exactly at a window's end belongs to the next window. Times
before 1970 are supported: alignment uses floor division, so ``-1 s`` falls in ``[-60 s, 0)``.

The arithmetic is done in integer microseconds (see :mod:`tables.micros`): :func:`window_ranges`
takes and returns float seconds for callers, and the window types expose the integer form
(``ranges_us``) that the state layer works in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeAlias

from tables.errors import ConfigError
from tables.micros import Duration, duration_micros, from_micros, to_micros

__all__ = ["Hopping", "Session", "Tumbling", "Window", "window_ranges", "window_starts"]


def window_ranges(t: float, size: Duration, step: Duration) -> list[tuple[float, float]]:
    """The fixed windows ``[start, end)`` that contain time ``t``, ascending by start.

    Windows of length ``size`` start at every multiple of ``step`` since the Unix epoch;
    ``step == size`` gives tumbling windows (exactly one range), ``step < size`` hopping ones
    (``ceil(size / step)`` or ``floor(size / step)`` ranges). Times are float epoch seconds.
    """
    size_us = duration_micros(size, owner="window_ranges", field="size")
    step_us = duration_micros(step, owner="window_ranges", field="step")
    _check_step(step_us, size_us, step, size, owner="window_ranges")
    return [
        (from_micros(start), from_micros(end)) for start, end in _ranges_us(to_micros(t), size_us, step_us)
    ]


def window_starts(start_from: int, start_to: int, size: int) -> range:
    """The starts ``s`` of epoch-aligned windows of ``size`` seconds with ``start_from <= s < start_to``.

    Whole seconds, as a result's key holds them: the keys a reader computes instead of listing.
    Ascending; ``reversed()`` gives them newest first. Empty when ``start_to <= start_from``.
    """
    if type(size) is not int or size <= 0:
        raise ConfigError("size", size, "must be a whole number of seconds > 0", kind="window_starts")
    first = -(-start_from // size) * size  # the smallest multiple of size at or after start_from
    return range(first, max(first, start_to), size)


def _ranges_us(t_us: int, size_us: int, step_us: int) -> list[tuple[int, int]]:
    # The first start is the smallest multiple of step strictly after t - size (the window
    # [t - size, t) ends exactly at t and so excludes it); the last is the largest multiple <= t.
    # Python's floor division and modulo round towards -inf, which keeps this right before 1970.
    first = ((t_us - size_us) // step_us + 1) * step_us
    last = t_us - t_us % step_us
    return [(start, start + size_us) for start in range(first, last + 1, step_us)]


def _check_step(step_us: int, size_us: int, step: Duration, size: Duration, *, owner: str) -> None:
    if step_us > size_us:
        raise ConfigError("step", step, f"must be <= size ({size!r}): windows would leave gaps", kind=owner)


@dataclass(frozen=True, slots=True)
class Tumbling:
    """Back-to-back windows of one ``size`` (a ``timedelta`` or seconds): each time is in one."""

    size: Duration
    size_us: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        size_us = duration_micros(self.size, owner="Tumbling", field="size")
        # Normalise to a timedelta so Tumbling(60) == Tumbling(timedelta(minutes=1)); a frozen
        # dataclass can only be completed in __post_init__ through object.__setattr__.
        object.__setattr__(self, "size", timedelta(microseconds=size_us))
        object.__setattr__(self, "size_us", size_us)

    def ranges_us(self, t_us: int) -> list[tuple[int, int]]:
        """The one window ``[start, end)`` (epoch microseconds) holding ``t_us``."""
        start = t_us - t_us % self.size_us
        return [(start, start + self.size_us)]


@dataclass(frozen=True, slots=True)
class Hopping:
    """Windows of ``size`` starting every ``step`` (``0 < step <= size``): overlapping when step < size."""

    size: Duration
    step: Duration
    size_us: int = field(init=False, repr=False, compare=False)
    step_us: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        size_us = duration_micros(self.size, owner="Hopping", field="size")
        step_us = duration_micros(self.step, owner="Hopping", field="step")
        _check_step(step_us, size_us, self.step, self.size, owner="Hopping")
        object.__setattr__(self, "size", timedelta(microseconds=size_us))
        object.__setattr__(self, "step", timedelta(microseconds=step_us))
        object.__setattr__(self, "size_us", size_us)
        object.__setattr__(self, "step_us", step_us)

    def ranges_us(self, t_us: int) -> list[tuple[int, int]]:
        """Every window ``[start, end)`` (epoch microseconds) holding ``t_us``, ascending by start."""
        return _ranges_us(t_us, self.size_us, self.step_us)


@dataclass(frozen=True, slots=True)
class Session:
    """Per-key activity sessions: events less than ``gap`` apart share one session.

    A session is ``[first event time, last event time + gap)``; it has no fixed ranges, so the
    state layer places events with the gap itself (see :mod:`tables.windowed`).
    """

    gap: Duration
    gap_us: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        gap_us = duration_micros(self.gap, owner="Session", field="gap")
        object.__setattr__(self, "gap", timedelta(microseconds=gap_us))
        object.__setattr__(self, "gap_us", gap_us)


#: Any window shape a metric can use.
Window: TypeAlias = Tumbling | Hopping | Session
