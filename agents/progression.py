"""progression: how far each student gets in their games, per tumbling window."""

from __future__ import annotations

from typing import Any

from agents.windowed import windowed_metric
from tables import Aggregates, Count, Max, MetricDefinition, Sum, Tumbling

LEVEL_EVENTS = {"level_started", "level_completed", "level_failed"}


def named(name: str) -> Any:
    return lambda event: event["name"] == name


def completion_rate(values: dict[str, Any]) -> dict[str, Any]:
    finished = values["levels_completed"] + values["levels_failed"]
    return {"completion_rate": values["levels_completed"] / finished if finished else None}


def define(window_seconds: int, grace_seconds: int) -> MetricDefinition:
    return MetricDefinition(
        name="progression",
        key_fields=("student_id",),
        time_field="occurred_at",
        window=Tumbling(window_seconds),
        grace=grace_seconds,
        where=lambda event: event["type"] == "game" and event["name"] in LEVEL_EVENTS,
        aggregates=Aggregates(
            {
                "levels_started": Count(where=named("level_started")),
                "levels_completed": Count(where=named("level_completed")),
                "levels_failed": Count(where=named("level_failed")),
                "max_level": Max("data.level", where=named("level_completed")),
                "score": Sum("data.score", where=named("level_completed")),
            },
            finalize=completion_rate,
            derived={"completion_rate": "number?"},
        ),
    )


build = windowed_metric(define)
