"""What the windowed state reports: an event's outcome, and each window's result.

:class:`Counted`, :class:`Late`, :class:`Duplicate` and :class:`Ignored` are what
``PartitionWindows.add`` says of an event; :class:`ClosedWindow` (final), :class:`OpenWindowResult` (so far) and
:class:`FailedWindow` (no result: computing it failed) are what it says of a window. Plain frozen
values: nothing here knows how windows are kept.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

__all__ = [
    "AddResult",
    "ClosedWindow",
    "Counted",
    "Duplicate",
    "FailedWindow",
    "Ignored",
    "Late",
    "OpenWindowResult",
    "first_non_finite",
]


@dataclass(frozen=True, slots=True)
class Counted:
    """The event was aggregated into ``windows`` open windows.

    Always 1 for tumbling windows and sessions; for hopping windows, the number of the event's
    windows still open (fewer than all of them when the earliest had already closed).
    """

    windows: int


@dataclass(frozen=True, slots=True)
class Late:
    """The event's windows had closed; it was not counted. ``reason`` is for the dead-letter.

    ``watermark`` is None when nothing had been promised yet (the event arrived late on its own).
    """

    reason: str
    event_time: float
    arrived_at: float
    watermark: float | None


@dataclass(frozen=True, slots=True)
class Ignored:
    """The metric's ``where`` did not match: the event was neither validated nor counted."""


@dataclass(frozen=True, slots=True)
class Duplicate:
    """Every open window of the event had already counted an event with its id (a retry)."""

    event_id: str


AddResult: TypeAlias = Counted | Late | Ignored | Duplicate



@dataclass(frozen=True, slots=True)
class _WindowResult:
    """The result of one window of one key.

    ``key`` maps each key field to its value; ``start``/``end`` are epoch seconds (for a session,
    ``end`` is its last event time + gap); ``events`` counts the events aggregated into it and
    ``values`` is the :class:`Aggregates` result.
    """

    metric: str
    key: dict[str, str]
    start: float
    end: float
    events: int
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ClosedWindow(_WindowResult):
    """A window the watermark has passed: its final values, reported exactly once."""


@dataclass(frozen=True, slots=True)
class OpenWindowResult(_WindowResult):
    """A window still open: its values so far, which later events may still change.

    Never equal to a :class:`ClosedWindow`; the window's final values come as one when it closes.
    """


@dataclass(frozen=True, slots=True)
class FailedWindow:
    """A window that closed without a result: computing it raised, or gave a non-finite number.

    It has left the state like any closed window (a failure would recur on every attempt, and
    holding it would hold up nothing but itself); ``error`` says what went wrong, for the
    dead-letter that replaces its result.
    """

    metric: str
    key: dict[str, str]
    start: float
    end: float
    events: int
    error: str


def first_non_finite(value: Any, path: str = "") -> str | None:
    """The dotted path of the first number in ``value`` that is NaN or infinite, else None.

    Results are written as strict JSON, which has no NaN or Infinity (JavaScript and Go clients
    refuse them); a window whose values hold one fails instead of poisoning every reader.
    """
    kind = type(value)
    if kind is float:
        return None if math.isfinite(value) else (path or "(the result)")
    if kind is dict or isinstance(value, dict):
        items: Iterable[tuple[Any, Any]] = value.items()
    elif kind is list or kind is tuple or isinstance(value, (list, tuple)):
        items = enumerate(value)
    elif isinstance(value, float):  # a float subclass, e.g. numpy's float64
        return None if math.isfinite(value) else (path or "(the result)")
    else:
        return None
    for name, item in items:
        # Every closing window passes here with a handful of plain values: judge those in line,
        # and name a path only for what is not finite or holds more values.
        item_kind = type(item)
        if item_kind is int or item_kind is str or item is None or item_kind is bool:
            continue
        if item_kind is float and math.isfinite(item):
            continue
        found = first_non_finite(item, f"{path}.{name}" if path else str(name))
        if found is not None:
            return found
    return None
