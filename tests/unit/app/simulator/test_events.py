"""Events the simulator builds: valid by the contract (unless meant not to be), unique ids,
real-time ``occurred_at``, and late and invalid ones that are what they say."""

from __future__ import annotations

import random
from datetime import datetime
from itertools import islice

import pytest

from app.simulator.behaviour import Profile, behaviour
from app.simulator.events import EventFactory, format_time
from contract.events import InvalidEvents, validate_event
from tests.unit.tables.clock import T0, FakeClock


def test_times_are_rfc3339_utc_with_milliseconds() -> None:
    assert format_time(T0) == "2024-05-01T10:00:00.000Z"
    assert format_time(T0 + 1.2345) == "2024-05-01T10:00:01.234Z"


def test_every_step_becomes_a_valid_event_happening_now() -> None:
    clock = FakeClock()
    factory = EventFactory("run1", lambda: clock.now, random.Random(1))
    ids = set()
    profile = Profile("ada", 0.5, 0.5)
    for step in islice(behaviour(profile, random.Random(2), lambda: clock.now), 3000):
        event = factory.event("ada", "ada-session-1", step)
        parsed = validate_event(event, now=clock.now)
        assert parsed.timestamp == pytest.approx(clock.now, abs=0.001)
        assert (parsed.game_id is not None) == (step.type == "game")
        ids.add(parsed.event_id)
        clock.advance(0.7)
    assert len(ids) == 3000


def test_ids_name_the_run_so_another_run_is_not_taken_for_a_repeat() -> None:
    clock = FakeClock()
    one = EventFactory("r1", lambda: clock.now, random.Random(1)).late("ada", "s", 100)
    two = EventFactory("r2", lambda: clock.now, random.Random(1)).late("ada", "s", 100)
    assert one["event_id"] != two["event_id"]
    assert one["event_id"].startswith("sim-r1-ada-")


def test_a_late_event_is_valid_and_happened_late_by_seconds_ago() -> None:
    clock = FakeClock()
    event = EventFactory("r", lambda: clock.now, random.Random(1)).late("ben", "s", 145.0)
    parsed = validate_event(event, now=clock.now)
    assert parsed.timestamp == pytest.approx(T0 - 145.0)


def test_invalid_events_break_the_contract_in_several_ways_with_valid_ids() -> None:
    clock = FakeClock()
    factory = EventFactory("r", lambda: clock.now, random.Random(5))
    broken_fields = set()
    for _ in range(100):
        event = factory.invalid("chloe", "s")
        assert event["student_id"] == "chloe"  # it still names a valid subject
        with pytest.raises(InvalidEvents) as refused:
            validate_event(event, now=clock.now)
        broken_fields.update(error.field for error in refused.value.errors)
    assert {"data.seconds", "data.score", "occurred_at", "data.correct"} <= broken_fields


def test_occurred_at_is_read_from_the_wall_clock_for_each_event() -> None:
    clock = FakeClock()
    factory = EventFactory("r", lambda: clock.now, random.Random(1))
    first = factory.late("a", "s", 1)
    clock.advance(60)
    second = factory.late("a", "s", 1)
    gap = datetime.fromisoformat(second["occurred_at"].replace("Z", "+00:00")) - datetime.fromisoformat(
        first["occurred_at"].replace("Z", "+00:00")
    )
    assert gap.total_seconds() == 60
