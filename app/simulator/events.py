"""Turning a simulated student's steps into events of the contract, and the deliberate faults.

Every event gets a unique ``event_id`` (the run's id, the student and a counter, so a second run
against the same deployment within the 10-minute dedupe window is not taken for a repeat) and a
real-time ``occurred_at``: the wall clock when it is built, in UTC with milliseconds.

Faults make the dead-letter paths visible:

- a *duplicate* is an event sent again unchanged (same ``event_id``), in a later request: it may
  be stored twice, and each window counts it once;
- a *late* event happened long enough ago that its window has closed (``late_by`` seconds, more
  than a window plus its grace): the workers dead-letter it on ``deadletter.late.<metric>``;
- an *invalid* event breaks one rule of the contract: HTTP ingest answers 422, NATS ingest
  dead-letters it on ``deadletter.invalid``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from app.simulator.behaviour import GAMES, Step

__all__ = ["EventFactory", "format_time"]

# One broken rule each, in the contract's terms (see contract/events.py).
_INVALID: Final[tuple[tuple[str, Callable[[dict[str, Any]], None]], ...]] = (
    ("a heartbeat of 0 seconds", lambda e: e.update(type="engagement", name="heartbeat", data={"seconds": 0})),
    ("a completed level without its score", lambda e: e.update(
        type="game", name="level_completed", game_id=GAMES[0], data={"level": 1, "duration_ms": 1000})),
    ("an occurred_at without a UTC offset", lambda e: e.update(occurred_at=e["occurred_at"].rstrip("Z"))),
    ("an answer whose correct is not a boolean", lambda e: e.update(
        type="interaction", name="answer_submitted", data={"correct": "yes"})),
)


def format_time(epoch_seconds: float) -> str:
    """RFC 3339 in UTC with milliseconds and ``Z``, as ``occurred_at`` is written."""
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


class EventFactory:
    """Builds the events of one simulator run.

    Args:
        run_id: what makes this run's event ids its own (``A-Z a-z 0-9 _ . : -``).
        wall_clock: epoch seconds, read for every event's ``occurred_at``.
        rng: chooses the kinds of invalid events.
    """

    def __init__(self, run_id: str, wall_clock: Callable[[], float], rng: random.Random) -> None:
        self._run_id = run_id
        self._clock = wall_clock
        self._rng = rng
        self._sequence = 0

    def _next_id(self, student_id: str) -> str:
        self._sequence += 1
        return f"sim-{self._run_id}-{student_id}-{self._sequence}"

    def event(self, student_id: str, session_id: str, step: Step) -> dict[str, Any]:
        """A valid event for ``step``, happening now."""
        return self._at(student_id, session_id, step, self._clock())

    def late(self, student_id: str, session_id: str, late_by: float) -> dict[str, Any]:
        """A valid heartbeat that happened ``late_by`` seconds ago."""
        step = Step("engagement", "heartbeat", {"seconds": 15})
        return self._at(student_id, session_id, step, self._clock() - late_by)

    def invalid(self, student_id: str, session_id: str) -> dict[str, Any]:
        """An event that breaks one rule of the contract (ids stay valid: they name a subject)."""
        event = self._at(student_id, session_id, Step("interaction", "answer_submitted"), self._clock())
        _, breaks = self._rng.choice(_INVALID)
        breaks(event)
        return event

    def _at(self, student_id: str, session_id: str, step: Step, when: float) -> dict[str, Any]:
        event: dict[str, Any] = {
            "event_id": self._next_id(student_id),
            "student_id": student_id,
            "type": step.type,
            "name": step.name,
            "occurred_at": format_time(when),
            "session_id": session_id,
            "data": dict(step.data),
        }
        if step.game_id is not None:
            event["game_id"] = step.game_id
        if step.activity_id is not None:
            event["activity_id"] = step.activity_id
        return event
