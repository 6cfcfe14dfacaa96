"""outcomes: each student's games won, lost and abandoned, per game and window."""

from __future__ import annotations

from typing import Any

from agents.windowed import windowed_metric
from tables import Aggregates, Count, Mean, MetricDefinition, Tumbling


def outcome(name: str) -> Any:
    return lambda event: event["data"]["outcome"] == name


def win_rate(values: dict[str, Any]) -> dict[str, Any]:
    return {"win_rate": values["wins"] / values["games"]}


def define(window_seconds: int, grace_seconds: int) -> MetricDefinition:
    return MetricDefinition(
        name="outcomes",
        key_fields=("student_id", "game_id"),
        time_field="occurred_at",
        window=Tumbling(window_seconds),
        grace=grace_seconds,
        where=lambda event: event["type"] == "game" and event["name"] == "game_finished",
        aggregates=Aggregates(
            {
                "games": Count(),
                "wins": Count(where=outcome("win")),
                "losses": Count(where=outcome("loss")),
                "abandons": Count(where=outcome("abandon")),
                "mean_score": Mean("data.score"),
                "mean_duration_ms": Mean("data.duration_ms"),
            },
            finalize=win_rate,
            derived={"win_rate": "number"},
        ),
    )


build = windowed_metric(define)
