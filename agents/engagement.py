"""engagement: how much each student interacts, answers correctly and stays active, per window."""

from __future__ import annotations

from typing import Any

from agents.windowed import windowed_metric
from tables import Aggregates, Count, MetricDefinition, Sum, Tumbling


def is_interaction(event: dict[str, Any]) -> bool:
    return event["type"] == "interaction"


def is_answer(event: dict[str, Any]) -> bool:
    return is_interaction(event) and type(event.get("data", {}).get("correct")) is bool


def accuracy(values: dict[str, Any]) -> dict[str, Any]:
    return {"accuracy": values["correct"] / values["answers"] if values["answers"] else None}


def define(window_seconds: int, grace_seconds: int) -> MetricDefinition:
    return MetricDefinition(
        name="engagement",
        key_fields=("student_id",),
        time_field="occurred_at",
        window=Tumbling(window_seconds),
        grace=grace_seconds,
        aggregates=Aggregates(
            {
                "interactions": Count(where=is_interaction),
                "answers": Count(where=is_answer),
                "correct": Count(where=lambda e: is_answer(e) and e["data"]["correct"]),
                "active_seconds": Sum("data.seconds", where=lambda e: e["name"] == "heartbeat" and e["type"] == "engagement"),
                "sessions": Count(where=lambda e: e["type"] == "engagement" and e["name"] == "session_started"),
            },
            finalize=accuracy,
            derived={"accuracy": "number?"},
        ),
    )


build = windowed_metric(define)
