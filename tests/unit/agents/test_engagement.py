"""engagement through the test driver: equal to the oracle, and one window by hand."""

from __future__ import annotations

from agents import engagement
from agents.windowed import MetricDriver

from .replay import GRACE, T0, WINDOW, assert_as_the_oracle, replay


def test_generated_sessions_give_the_oracle_s_finals() -> None:
    assert_as_the_oracle(replay(engagement.define, seed=3))


def test_a_window_of_answers_heartbeats_and_a_session() -> None:
    driver = MetricDriver(engagement.define, now=T0 + 25, window_seconds=WINDOW, grace_seconds=GRACE)
    base = {"student_id": "s1", "occurred_at": "2024-05-01T12:00:20+02:00"}  # 10:00:20Z, T0 + 20
    driver.send({**base, "event_id": "a", "type": "engagement", "name": "session_started"})
    driver.send({**base, "event_id": "b", "type": "interaction", "name": "answer_submitted", "data": {"correct": True}})
    driver.send({**base, "event_id": "c", "type": "interaction", "name": "answer_submitted", "data": {"correct": False}})
    driver.send({**base, "event_id": "d", "type": "interaction", "name": "hint_opened"})
    driver.send({**base, "event_id": "e", "type": "engagement", "name": "heartbeat", "data": {"seconds": 12.5}})
    driver.close_all()
    assert driver.finals()[f"engagement.s1.{T0}"]["values"] == {
        "interactions": 3, "answers": 2, "correct": 1, "accuracy": 0.5, "active_seconds": 12.5, "sessions": 1,
    }
    assert [p.subject for p in driver.published] == ["results.engagement.s1"]
    assert driver.dead_letters == []
