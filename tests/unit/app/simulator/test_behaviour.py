"""A simulated student's profile and steps: every kind of event the metrics count, and skill and
engagement that make a visible difference."""

from __future__ import annotations

import random
import re
from collections import Counter
from itertools import islice

import pytest

from app.simulator.behaviour import GAMES, Profile, Step, behaviour, class_profiles, student_ids
from tests.unit.tables.clock import FakeClock

ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def steps(profile: Profile, count: int, *, seed: int = 1, tick: float = 2.0) -> list[Step]:
    """``count`` steps, the clock moving ``tick`` seconds between turns."""
    clock = FakeClock()
    out = []
    for step in islice(behaviour(profile, random.Random(seed), lambda: clock.now), count):
        out.append(step)
        clock.advance(tick)
    return out


def test_student_ids_are_readable_unique_and_valid() -> None:
    ids = student_ids(60)
    assert ids[:3] == ["ada", "ben", "chloe"]
    assert ids[25] == "ada-2" and ids[50] == "ada-3"
    assert len(set(ids)) == 60
    assert all(ID.fullmatch(i) for i in ids)


def test_profiles_spread_skill_and_engagement_over_the_class() -> None:
    profiles = class_profiles(12, random.Random(3))
    skills = sorted(p.skill for p in profiles)
    engagements = sorted(p.engagement for p in profiles)
    assert skills[0] == pytest.approx(0.2) and skills[-1] == pytest.approx(0.95)
    assert engagements[0] == pytest.approx(0.15) and engagements[-1] == pytest.approx(1.0)
    assert [p.student_id for p in profiles] == student_ids(12)
    assert class_profiles(12, random.Random(3)) == profiles  # a seed repeats a class
    assert class_profiles(12, random.Random(4)) != profiles


@pytest.mark.parametrize("count", [0, -1])
def test_a_class_needs_a_student(count: int) -> None:
    with pytest.raises(ValueError, match="at least one student"):
        class_profiles(count, random.Random(1))


def test_one_student_is_a_class() -> None:
    (only,) = class_profiles(1, random.Random(1))
    assert only.student_id == "ada"


def test_a_student_does_everything_the_metrics_count() -> None:
    seen = Counter()
    for step in steps(Profile("s", skill=0.6, engagement=0.5), 5000):
        detail = step.data.get("outcome", step.data.get("correct"))
        seen[(step.type, step.name, detail)] += 1
    expected = {
        ("engagement", "session_started", None), ("engagement", "session_ended", None),
        ("engagement", "heartbeat", None), ("interaction", "answer_submitted", True),
        ("interaction", "answer_submitted", False), ("interaction", "hint_opened", None),
        ("game", "level_started", None), ("game", "level_completed", None), ("game", "level_failed", None),
        ("game", "game_finished", "win"), ("game", "game_finished", "loss"), ("game", "game_finished", "abandon"),
    }  # fmt: skip
    assert expected <= set(seen), expected - set(seen)


def test_games_are_levels_in_order_ending_with_a_result_timed_by_the_clock() -> None:
    game: list[Step] = []
    for step in steps(Profile("s", skill=0.7, engagement=0.6), 3000, tick=2.0):
        if step.type != "game":
            assert not game, "a game's steps come one after another"
            continue
        game.append(step)
        if step.name != "game_finished":
            continue
        assert {s.game_id for s in game} <= set(GAMES) and len({s.game_id for s in game}) == 1
        started = [s.data["level"] for s in game if s.name == "level_started"]
        assert started == list(range(1, len(started) + 1))
        for s in game:
            if s.name in ("level_completed", "level_failed"):
                assert s.data["duration_ms"] == 2000  # one turn of the clock after its start
        assert step.data["duration_ms"] == 2000 * (len(game) - 1)
        assert step.data["score"] == sum(s.data["score"] for s in game if s.name == "level_completed")
        game = []


def accuracy(profile: Profile) -> float:
    answers = [s.data["correct"] for s in steps(profile, 6000) if s.name == "answer_submitted"]
    return sum(answers) / len(answers)


def test_skill_shows_in_accuracy() -> None:
    weak, strong = accuracy(Profile("w", 0.2, 0.5)), accuracy(Profile("s", 0.95, 0.5))
    assert weak < 0.4 < 0.8 < strong, (weak, strong)


def test_engagement_shows_in_heartbeats_and_activity() -> None:
    def heartbeats(engagement: float) -> int:
        return sum(s.name == "heartbeat" for s in steps(Profile("s", 0.5, engagement), 4000))

    assert heartbeats(0.15) < 0.75 * heartbeats(1.0)
    assert Profile("idle", 0.5, 0.15).activity < Profile("keen", 0.5, 1.0).activity
