"""A simulated class's turns: the rate shared out by engagement, and the faults mixed in."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from app.simulator.behaviour import Profile, class_profiles
from app.simulator.classroom import Classroom, Faults
from app.simulator.events import EventFactory
from contract.events import InvalidEvents, validate_event
from tests.unit.tables.clock import FakeClock


def classroom(profiles: list[Profile], faults: Faults = Faults(), seed: int = 1) -> tuple[Classroom, FakeClock]:
    clock = FakeClock()
    rng = random.Random(seed)
    return Classroom(profiles, EventFactory("r", lambda: clock.now, rng), rng, lambda: clock.now, faults), clock


def test_a_tick_is_as_many_valid_events_as_turns_with_no_faults_by_default() -> None:
    room, clock = classroom(class_profiles(6, random.Random(1)))
    batch = room.tick(50)
    assert len(batch.events) == 50 and not batch.repeats and not batch.invalid and batch.late == 0
    for event in batch.events:
        validate_event(event, now=clock.now)


def test_engaged_students_take_more_turns() -> None:
    room, _ = classroom([Profile("idle", 0.5, 0.0), Profile("keen", 0.5, 1.0)])
    turns = Counter(e["student_id"] for e in room.tick(4000).events)
    assert turns["keen"] > 3 * turns["idle"] > 0


def test_each_session_has_its_own_id_and_starts_with_session_started() -> None:
    room, _ = classroom([Profile("ada", 0.5, 0.2)])
    events = room.tick(2000).events
    sessions: dict[str, list[str]] = {}
    for event in events:
        sessions.setdefault(event["session_id"], []).append(event["name"])
    assert len(sessions) > 3
    assert all(names[0] == "session_started" for names in sessions.values())


def test_faults_come_along_at_their_rates() -> None:
    room, clock = classroom(class_profiles(4, random.Random(2)), Faults(duplicates=1.0, late=1.0, invalid=1.0, late_by=90))
    batch = room.tick(10)
    assert batch.repeats == batch.events[::2]  # each valid event is followed by its late one
    assert batch.late == 10 and len(batch.events) == 20
    late = batch.events[1::2]
    assert all(validate_event(e, now=clock.now).timestamp == pytest.approx(clock.now - 90) for e in late)
    assert len(batch.invalid) == 10
    for event in batch.invalid:
        with pytest.raises(InvalidEvents):
            validate_event(event, now=clock.now)


def test_rare_faults_are_rare() -> None:
    room, _ = classroom(class_profiles(4, random.Random(2)), Faults(duplicates=0.05, late=0.05, invalid=0.05))
    batch = room.tick(4000)
    for count in (len(batch.repeats), batch.late, len(batch.invalid)):
        assert 120 < count < 300


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        (dict(duplicates=1.5), "duplicates must be a probability"),
        (dict(late=-0.1), "late must be a probability"),
        (dict(invalid=2), "invalid must be a probability"),
        (dict(late_by=0), "late_by must be > 0"),
    ],
)
def test_faults_refuse_what_is_not_a_probability(faults: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Faults(**faults)


def test_a_class_needs_a_student() -> None:
    with pytest.raises(ValueError, match="at least one student"):
        classroom([])
