"""The watermark of one partition: how far event time has certainly progressed.

Formula. Every observed event ``i`` (event time ``t_i``, arrived at wall-clock time ``a_i``)
vouches that event time has reached at least ``t_i + (now - a_i)``: the stream has aged by the wall
time elapsed since. The watermark is the largest such value::

    value(now) = max_i (t_i + (now - a_i))

Why wall time at all: with event time alone, a stream that goes quiet would never close its last
windows (no newer event ever arrives to push the watermark past them). Advancing by wall time
closes them on schedule, and the caller can compute when (see ``reaches_at_us``).

Why the maximum over *every* event rather than only the one with the largest event time: the two
agree except when a newer event arrives with a smaller projection (the stream was idle, then an
event came in behind the wall clock). Taking only that event would move the watermark back and
reopen windows already reported; the maximum never decreases. It is kept as one pair (``base``,
``wall``) meaning "the watermark was ``base`` at wall time ``wall``", so the state is two integers.

Wall-clock steps backwards (NTP) never lower the value below ``base``: elapsed time is clamped at
zero, and the state layer calls ``advance_us`` whenever it closes windows, so the watermark those
windows closed at is kept as ``base`` and a closed window cannot be reopened.

Times are int epoch microseconds internally (see :mod:`tables.micros`); ``observe``/``value`` are
the float-seconds edge, the ``*_us`` methods what the state layer uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tables.errors import StateError
from tables.micros import from_micros, to_micros

__all__ = ["Watermark"]


class Watermark:
    """The per-partition watermark; empty (``value`` is None) until the first event."""

    __slots__ = ("_base_us", "_wall_us")

    def __init__(self) -> None:
        self._base_us: int | None = None
        self._wall_us = 0

    def observe(self, event_time: float, now: float) -> None:
        """Take an event with ``event_time`` that arrived at wall time ``now`` into account."""
        self.observe_us(to_micros(event_time), to_micros(now))

    def value(self, now: float) -> float | None:
        """The watermark at wall time ``now`` (epoch seconds), or None before any event."""
        value_us = self.value_us(to_micros(now))
        return None if value_us is None else from_micros(value_us)

    def observe_us(self, event_us: int, now_us: int) -> None:
        """``observe`` in epoch microseconds."""
        self.advance_us(now_us)
        if self._base_us is None:
            self._base_us, self._wall_us = event_us, now_us
        elif event_us > self._base_us:
            self._base_us = event_us

    def value_us(self, now_us: int) -> int | None:
        """``value`` in epoch microseconds."""
        if self._base_us is None:
            return None
        return self._base_us + max(0, now_us - self._wall_us)

    def advance_us(self, now_us: int) -> None:
        """Re-anchor at ``now_us`` without changing any value: ``base`` becomes ``value(now)``.

        A no-op when empty or when ``now_us`` is not later than the anchor; after it, a wall
        clock that steps back cannot take the value below what it is now.
        """
        if self._base_us is not None and now_us > self._wall_us:
            self._base_us += now_us - self._wall_us
            self._wall_us = now_us

    def reaches_at_us(self, target_us: int) -> int | None:
        """The earliest wall time at which the value is ``>= target_us`` if no event arrives.

        None when empty; the anchor's wall time when it is already there.
        """
        if self._base_us is None:
            return None
        return self._wall_us + max(0, target_us - self._base_us)

    def to_json(self) -> dict[str, int]:
        """A JSON-compatible snapshot: ``{}`` when empty, else ``{"base_us": ..., "wall_us": ...}``."""
        if self._base_us is None:
            return {}
        return {"base_us": self._base_us, "wall_us": self._wall_us}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, key: str = "watermark") -> Watermark:
        """Rebuild from ``to_json()``; ``key`` names the stored item in a :class:`StateError`."""
        watermark = cls()
        if not isinstance(data, Mapping):
            raise StateError(key, f"expected a JSON object, got {data!r}")
        if not data:
            return watermark
        base, wall = data.get("base_us"), data.get("wall_us")
        if type(base) is not int or type(wall) is not int or set(data) != {"base_us", "wall_us"}:
            raise StateError(key, f'expected {{"base_us": int, "wall_us": int}}, got {dict(data)!r}')
        watermark._base_us, watermark._wall_us = base, wall
        return watermark

    def __repr__(self) -> str:
        return f"Watermark({self.to_json()!r})"
