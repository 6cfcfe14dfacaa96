"""A simulated class: whose turn it is, what they do, and the faults mixed in.

The class's event rate is shared out by each student's :attr:`~app.simulator.behaviour.Profile.
activity`, so engaged students produce more events than idle ones. Each turn advances that
student's :func:`~app.simulator.behaviour.behaviour` by one step and turns it into an event.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from app.simulator.behaviour import Profile, Step, behaviour
from app.simulator.events import EventFactory

__all__ = ["Batch", "Classroom", "Faults"]


@dataclass(frozen=True, slots=True)
class Faults:
    """How often each fault rides along with a valid event (probabilities in [0, 1])."""

    duplicates: float = 0.0
    late: float = 0.0
    invalid: float = 0.0
    #: how long ago a late event happened; more than a window plus its grace
    late_by: float = 150.0

    def __post_init__(self) -> None:
        for name in ("duplicates", "late", "invalid"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability between 0 and 1, got {value!r}")
        if self.late_by <= 0:
            raise ValueError(f"late_by must be > 0 seconds, got {self.late_by!r}")


@dataclass(slots=True)
class Batch:
    """One tick's events, grouped by how ingest should treat them."""

    #: valid events, the late ones included (late is the workers' verdict, not ingest's)
    events: list[dict[str, Any]] = field(default_factory=list)
    #: events of this batch sent a second time, unchanged
    repeats: list[dict[str, Any]] = field(default_factory=list)
    #: events that break the contract
    invalid: list[dict[str, Any]] = field(default_factory=list)
    late: int = 0


class _Student:
    def __init__(self, profile: Profile, steps: Iterator[Step]) -> None:
        self.profile = profile
        self.steps = steps
        self.session_id = ""
        self.sessions = 0


class Classroom:
    """The students of one run and their turns.

    Args:
        profiles: who is in the class.
        factory: builds events (ids, times).
        rng: the only source of chance, so a seed repeats a run's choices.
        clock: monotonic seconds, timing levels and games.
        faults: what to mix in.
    """

    def __init__(
        self,
        profiles: list[Profile],
        factory: EventFactory,
        rng: random.Random,
        clock: Callable[[], float],
        faults: Faults = Faults(),
    ) -> None:
        if not profiles:
            raise ValueError("a class needs at least one student")
        self._students = [_Student(p, behaviour(p, random.Random(rng.random()), clock)) for p in profiles]
        self._weights = [p.activity for p in profiles]
        self._factory = factory
        self._rng = rng
        self._faults = faults

    @property
    def profiles(self) -> list[Profile]:
        return [student.profile for student in self._students]

    def tick(self, turns: int) -> Batch:
        """``turns`` events from students chosen by activity, with the faults that come along."""
        batch = Batch()
        faults = self._faults
        for student in self._rng.choices(self._students, weights=self._weights, k=turns):
            event = self._take_turn(student)
            batch.events.append(event)
            sid = student.profile.student_id
            if self._rng.random() < faults.duplicates:
                batch.repeats.append(event)
            if self._rng.random() < faults.late:
                batch.events.append(self._factory.late(sid, student.session_id, faults.late_by))
                batch.late += 1
            if self._rng.random() < faults.invalid:
                batch.invalid.append(self._factory.invalid(sid, student.session_id))
        return batch

    def _take_turn(self, student: _Student) -> dict[str, Any]:
        step = next(student.steps)
        if step.name == "session_started" or not student.session_id:
            student.sessions += 1
            student.session_id = f"{student.profile.student_id}-session-{student.sessions}"
        return self._factory.event(student.profile.student_id, student.session_id, step)
