"""poisoned: a test metric whose aggregator raises on a marker value, run by the poison-event
fault test as ``python -m app worker tests/faults/poisoned.py``.

It counts each student's events per window twice over — once with the built-in ``Count`` and
once with :class:`Fragile`, which raises on an event whose ``data.marker`` is ``"poison"``.
``Count`` comes first, so a half-applied event would show up as ``events`` != ``checked``; the
runtime must apply all of an event or none of it, dead-letter the one that raised and go on.
"""

from __future__ import annotations

from typing import Any

from agents.windowed import windowed_metric
from tables import Aggregates, Aggregator, Count, MetricDefinition, Tumbling

#: the ``data.marker`` value that makes :class:`Fragile` raise
POISON = "poison"


class PoisonedEvent(RuntimeError):
    """What :class:`Fragile` raises: the stand-in for a bug that only some input triggers."""


class Fragile(Aggregator):
    """Counts events, and raises on a poisoned one."""

    def initialize(self) -> int:
        return 0

    def agg(self, state: int, event: Any, ts: float) -> int:
        if event.get("data", {}).get("marker") == POISON:
            raise PoisonedEvent(f"cannot aggregate event {event['event_id']}")
        return state + 1

    def result(self, state: int) -> int:
        return state


def define(window_seconds: int, grace_seconds: int) -> MetricDefinition:
    return MetricDefinition(
        name="poisoned",
        key_fields=("student_id",),
        time_field="occurred_at",
        window=Tumbling(window_seconds),
        grace=grace_seconds,
        aggregates=Aggregates({"events": Count(), "checked": Fragile()}),
    )


build = windowed_metric(define)
