"""How a simulated student behaves: a profile (skill, engagement) and the steps it leads to.

A student's activity is a generator of :class:`Step`\\ s, advanced only when the class's pace says
it is that student's turn, so durations measured with ``clock`` are the real time between the
student's own events. What a step looks like follows the event contract (``contract/events.py``);
turning it into an event (ids, ``occurred_at``, session) is :mod:`app.simulator.events`' job.

- ``skill`` in [0, 1] drives right answers and completed levels, hence accuracy, completion
  rate, wins and scores;
- ``engagement`` in [0, 1] drives how much of the class's activity is the student's, how long
  sessions last, how often games are abandoned and how many heartbeats are sent.

:func:`class_profiles` spreads both over the class, so some students are clearly struggling
(low skill) and some clearly idle (low engagement), and the dashboard has something to show.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["GAMES", "Profile", "Step", "behaviour", "class_profiles", "student_ids"]

GAMES: Final = ("math-quest", "word-builder", "logic-lab")

_NAMES: Final = (
    "ada", "ben", "chloe", "dev", "emma", "finn", "grace", "hugo", "iris", "jonas", "kai", "lena",
    "milo", "nora", "omar", "priya", "quinn", "rosa", "sam", "tara", "uma", "victor", "wen",
    "yusuf", "zoe",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Profile:
    """One student: who, how able, how engaged (both in [0, 1])."""

    student_id: str
    skill: float
    engagement: float

    @property
    def activity(self) -> float:
        """The student's weight when the class's next event is handed out."""
        return 0.3 + self.engagement


@dataclass(frozen=True, slots=True)
class Step:
    """One thing a student does, before it becomes an event."""

    type: str
    name: str
    data: dict[str, Any] = field(default_factory=dict)
    game_id: str | None = None
    activity_id: str | None = None


def student_ids(count: int) -> list[str]:
    """Readable, stable ids: ``ada``, ``ben``, ... and ``ada-2``, ... past the 25th."""
    return [
        _NAMES[n % len(_NAMES)] + (f"-{n // len(_NAMES) + 1}" if n >= len(_NAMES) else "")
        for n in range(count)
    ]


def class_profiles(count: int, rng: random.Random) -> list[Profile]:
    """``count`` students whose skill and engagement are spread evenly and paired at random.

    Even spacing rather than random draws: a class of six still has a weak and a strong student.
    """
    if count < 1:
        raise ValueError(f"a class needs at least one student, got {count}")
    skills = [0.2 + 0.75 * n / max(1, count - 1) for n in range(count)]
    engagements = [0.15 + 0.85 * n / max(1, count - 1) for n in range(count)]
    rng.shuffle(skills)
    rng.shuffle(engagements)
    return [
        Profile(student_id, round(skill, 3), round(engagement, 3))
        for student_id, skill, engagement in zip(student_ids(count), skills, engagements, strict=True)
    ]


def behaviour(profile: Profile, rng: random.Random, clock: Callable[[], float]) -> Iterator[Step]:
    """The student's steps, forever: sessions of answers, hints, heartbeats and games.

    ``clock`` is a monotonic clock in seconds; it times levels and games.
    """
    session_end = 0.02 + 0.06 * (1 - profile.engagement)
    while True:
        yield Step("engagement", "session_started")
        while True:
            roll = rng.random()
            if roll < 0.12:  # a game is several events: 1 in 8 turns starts one
                yield from _game(profile, rng, clock)
            elif roll < 0.12 + 0.1 + 0.2 * profile.engagement:
                yield Step("engagement", "heartbeat", {"seconds": rng.choice((10, 15, 20, 30))})
            elif roll < 0.9:
                yield _answer(profile, rng)
            else:
                yield Step("interaction", "hint_opened", activity_id=f"quiz-{rng.randrange(1, 6)}")
            if rng.random() < session_end:
                break
        yield Step("engagement", "session_ended")


def _answer(profile: Profile, rng: random.Random) -> Step:
    correct = rng.random() < 0.1 + 0.85 * profile.skill
    return Step("interaction", "answer_submitted", {"correct": correct}, activity_id=f"quiz-{rng.randrange(1, 6)}")


def _game(profile: Profile, rng: random.Random, clock: Callable[[], float]) -> Iterator[Step]:
    """Levels until the plan is done (a win), a level fails (a loss) or the student leaves."""
    game_id = rng.choice(GAMES)
    started = clock()
    score = 0
    outcome = "win"
    for level in range(1, rng.randint(1, 4) + 1):
        level_started = clock()
        yield Step("game", "level_started", {"level": level}, game_id=game_id)
        # Resumed at the student's next turn: the level took the time in between.
        if rng.random() < 0.12 * (1 - profile.engagement):
            outcome = "abandon"
            break
        duration_ms = max(0, int((clock() - level_started) * 1000))
        if rng.random() < 0.2 + 0.75 * profile.skill:
            points = int(rng.randint(40, 100) * (0.5 + profile.skill))
            score += points
            data = {"level": level, "score": points, "duration_ms": duration_ms}
            yield Step("game", "level_completed", data, game_id=game_id)
        else:
            yield Step("game", "level_failed", {"level": level, "duration_ms": duration_ms}, game_id=game_id)
            outcome = "loss"
            break
    duration_ms = max(0, int((clock() - started) * 1000))
    yield Step("game", "game_finished", {"outcome": outcome, "score": score, "duration_ms": duration_ms}, game_id=game_id)
