"""Builders shared by the PartitionWindows tests: one metric, its events, and time moved by promise.

Time in these tests is arrival time (see ``tables.watermark``): an event's ``arrived_at`` is passed
to ``add``, and the watermark moves only when a test promises it. Tests that are not about offsets
use :func:`advance`, a promise about every record ("after offset 0"), which counts at once.
"""

from __future__ import annotations

from typing import Any

from tables.aggregators import Aggregates, Count, CountDistinct, Last, Max, Mean, Min, Sum
from tables.metric import MetricDefinition
from tables.outcomes import ClosedWindow, FailedWindow, OpenWindowResult
from tables.windowed import PartitionWindows
from tables.windows import Tumbling, Window

from .clock import T0

# T0 is 2024-05-01T10:00:00Z, a whole hour, so minute windows start at T0 + k * 60.
T0_US = int(T0) * 1_000_000

ALL_AGGREGATES = Aggregates(
    {
        "n": Count(),
        "total": Sum("score"),
        "low": Min("score"),
        "high": Max("score"),
        "avg": Mean("score"),
        "last": Last("score"),
        "questions": CountDistinct("question"),
    }
)


def define(window: Window | None = None, grace: float = 0, **overrides: Any) -> MetricDefinition:
    """The metric ``answers`` per student over ``window`` (default: tumbling minutes)."""
    arguments: dict[str, Any] = {
        "name": "answers",
        "key_fields": ("student_id",),
        "time_field": "ts",
        "window": window or Tumbling(60),
        "grace": grace,
        "aggregates": ALL_AGGREGATES,
    }
    arguments.update(overrides)
    return MetricDefinition(**arguments)


def answer(student: str, at: float, score: float | None = 1, question: str = "q1") -> dict[str, Any]:
    """An answer event whose own time (``ts``) is ``at``, epoch seconds."""
    return {"student_id": student, "ts": at, "score": score, "question": question}


def advance(windows: PartitionWindows, arrived_from: float) -> bool:
    """Promise that every record arrived at or after ``arrived_from``; it counts at once."""
    return windows.promise(0, arrived_from, next_offset=None)


def close_at(windows: PartitionWindows, arrived_from: float) -> list[ClosedWindow | FailedWindow]:
    """Move the watermark to ``arrived_from`` (never back) and close what is due."""
    advance(windows, arrived_from)
    return windows.close_due()


def summary(closed: list[Any]) -> list[tuple[str, float, float, int]]:
    """(student, start - T0, end - T0, events) of each window, in the order given."""
    return [(w.key["student_id"], w.start - T0, w.end - T0, w.events) for w in closed]


def storage_key(start_offset: float, student: str = "s1", metric: str = "answers") -> str:
    """The storage key of ``student``'s window starting ``start_offset`` seconds after T0."""
    return f"{metric}.window.{T0_US + round(start_offset * 1_000_000)}.{student}"


def values_of(result: ClosedWindow | OpenWindowResult | FailedWindow) -> dict[str, Any]:
    """The values of a window that has them; fails the test for a FailedWindow."""
    assert not isinstance(result, FailedWindow), f"unexpected failure: {result}"
    return result.values
