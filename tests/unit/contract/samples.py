"""Valid events and a way to change them, shared by the event tests."""

from __future__ import annotations

from typing import Any

import pytest

from contract.events import InvalidEvents, validate_event

NOW = 1_714_557_600.0  # 2024-05-01T10:00:00Z, the server's clock in every test


class _Drop:
    """As a value in changed(): remove the key.

    Named in test ids as DROP: an ``object()``'s repr holds its address, which differs between
    the processes of a parallel run (pytest-xdist), and they must collect the same test ids.
    """

    def __repr__(self) -> str:
        return "DROP"


DROP = _Drop()

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

# The problems the contract reports, word for word.
SUBJECT_ID = "must be 1-64 characters of A-Z a-z 0-9 _ -"
EVENT_ID = "must be 1-128 characters of A-Z a-z 0-9 _ . : -"
NAME = "must be 1-64 characters of a-z 0-9 _"
TYPE = "must be one of game, interaction, engagement"
FREE_TEXT = "must be a string of at most 128 characters"
OCCURRED_AT = "must be RFC 3339 with a UTC offset"
FUTURE = "is more than 5 minutes in the future"
COUNT = "must be an integer >= 0 and <= 9007199254740992"
AMOUNT = "must be a number >= 0 and <= 9007199254740992"
NUMBER = "must be a number >= -9007199254740992 and <= 9007199254740992"
REQUIRED = "field required"
JSON_ONLY = "must hold only JSON values"
HEARTBEAT = "must be a number > 0 and <= 3600"
BOOLEAN = "must be a boolean"


def problems(document: Any, *, now: float = NOW) -> list[tuple[str, str]]:
    """(field, message) of every error validate_event reports; [] when the event is valid."""
    try:
        validate_event(document, now=now)
    except InvalidEvents as exc:
        assert {error.index for error in exc.errors} == {0}
        return [(error.field, error.message) for error in exc.errors]
    return []


def case(field: str, value: Any, expected: str | None, *, base: dict[str, Any] = INTERACTION) -> Any:
    """A table row: ``base`` with ``field`` set to ``value`` gives ``expected`` (None: valid)."""
    want = [] if expected is None else [(field, expected)]
    return pytest.param(changed(base, **{field: value}), want, id=f"{field}={value!r:.40}")
