"""progression through the test driver: equal to the oracle, and one window by hand."""

from __future__ import annotations

from agents import progression
from agents.windowed import MetricDriver

from .replay import GRACE, T0, WINDOW, assert_as_the_oracle, replay


def test_generated_sessions_give_the_oracle_s_finals() -> None:
    assert_as_the_oracle(replay(progression.define, seed=5))


def level(event_id: str, name: str, data: dict[str, int]) -> dict[str, object]:
    return {"event_id": event_id, "student_id": "s1", "type": "game", "name": name, "game_id": "g-math",
            "occurred_at": "2024-05-01T10:00:40Z", "data": data}


def test_levels_started_completed_and_failed_and_what_it_ignores() -> None:
    driver = MetricDriver(progression.define, now=T0 + 41, window_seconds=WINDOW, grace_seconds=GRACE)
    driver.send(level("a", "level_started", {"level": 1}))
    driver.send(level("b", "level_completed", {"level": 1, "score": 120, "duration_ms": 900}))
    driver.send(level("c", "level_completed", {"level": 2, "score": 30, "duration_ms": 900}))
    driver.send(level("d", "level_failed", {"level": 3, "duration_ms": 900}))
    driver.send(level("e", "game_finished", {"outcome": "win", "score": 150, "duration_ms": 4000}))
    driver.close_all()
    (final,) = driver.finals().values()
    assert final["events"] == 4
    assert final["values"] == {
        "levels_started": 1, "levels_completed": 2, "levels_failed": 1, "max_level": 2, "score": 150,
        "completion_rate": 2 / 3,
    }
    assert driver.stats["ignored"] == 1
