"""outcomes through the test driver: equal to the oracle, and windows per game by hand."""

from __future__ import annotations

from agents import outcomes
from agents.windowed import MetricDriver

from .replay import GRACE, T0, WINDOW, assert_as_the_oracle, replay


def test_generated_sessions_give_the_oracle_s_finals() -> None:
    assert_as_the_oracle(replay(outcomes.define, seed=7, students=12, minutes=10))


def finished(event_id: str, game: str, outcome: str, score: int) -> dict[str, object]:
    return {"event_id": event_id, "student_id": "s1", "type": "game", "name": "game_finished", "game_id": game,
            "occurred_at": "2024-05-01T10:00:40Z", "data": {"outcome": outcome, "score": score, "duration_ms": 1000}}


def test_one_window_per_student_and_game() -> None:
    driver = MetricDriver(outcomes.define, now=T0 + 41, window_seconds=WINDOW, grace_seconds=GRACE)
    driver.send(finished("a", "g-math", "win", 100))
    driver.send(finished("b", "g-math", "loss", 20))
    driver.send(finished("c", "g-words", "abandon", 0))
    driver.close_all()
    finals = driver.finals()
    assert set(finals) == {f"outcomes.s1.g-math.{T0}", f"outcomes.s1.g-words.{T0}"}
    assert finals[f"outcomes.s1.g-math.{T0}"]["values"] == {
        "games": 2, "wins": 1, "losses": 1, "abandons": 0, "mean_score": 60.0, "mean_duration_ms": 1000.0,
        "win_rate": 0.5,
    }
    assert finals[f"outcomes.s1.g-math.{T0}"]["key"] == {"student_id": "s1", "game_id": "g-math"}
    assert [p.subject for p in driver.published] == ["results.outcomes.s1", "results.outcomes.s1"]
