"""Valid events and a way to change them, shared by the event tests."""

from __future__ import annotations

from typing import Any

NOW = 1_714_557_600.0  # 2024-05-01T10:00:00Z, the server's clock in every test
DROP = object()  # as a value in changed(): remove the key

INTERACTION: dict[str, Any] = {
    "event_id": "ev-1",
    "student_id": "s-42",
    "type": "interaction",
    "name": "answer_submitted",
    "occurred_at": "2024-05-01T10:00:00Z",
    "data": {"correct": True},
}
GAME: dict[str, Any] = {
    "event_id": "ev-2",
    "student_id": "s-42",
    "type": "game",
    "name": "level_completed",
    "occurred_at": "2024-05-01T10:00:00Z",
    "game_id": "g-math",
    "data": {"level": 3, "score": 120, "duration_ms": 5400},
}


def changed(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of ``base`` with ``changes`` applied; a change to DROP removes the key."""
    event = {**base, **changes}
    return {key: value for key, value in event.items() if value is not DROP}
