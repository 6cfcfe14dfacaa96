"""Retries count once: with an ``id_field`` a window remembers the ids it counted, for as long as
it is open, so a copy of an event is counted once however late it comes (before the window
closes), through restarts, in hopping windows and in sessions that merge."""

from __future__ import annotations

from typing import Any

import pytest

from tables.errors import InvalidEventError, StateError
from tables.windowed import Counted, Duplicate, Late, PartitionWindows
from tables.windows import Hopping, Session

from .clock import T0
from .windowed_helpers import advance, close_at, define, storage_key, summary


def event(event_id: str, at: float, student: str = "s1", score: int = 1) -> dict[str, Any]:
    return {"id": event_id, "student_id": student, "ts": at, "score": score, "question": "q1"}


def test_a_retry_an_hour_later_counts_once_while_its_window_is_open() -> None:
    # An hour-long window: the copy comes 20 minutes after the first, far beyond any broker's
    # duplicate window, and is still recognised.
    windows = PartitionWindows(define(window=Hopping(3600, 3600), grace=60, id_field="id"))
    assert windows.add(event("e1", T0 + 10), arrived_at=T0 + 11) == Counted(1)
    assert windows.add(event("e2", T0 + 20, score=5), arrived_at=T0 + 21) == Counted(1)
    assert windows.add(event("e1", T0 + 10), arrived_at=T0 + 1210) == Duplicate("e1")
    [closed] = close_at(windows, T0 + 3660)
    assert closed.events == 2 and closed.values["total"] == 6


def test_without_an_id_field_a_copy_counts_again() -> None:
    windows = PartitionWindows(define())
    windows.add(event("e1", T0 + 10), arrived_at=T0 + 11)
    assert windows.add(event("e1", T0 + 10), arrived_at=T0 + 12) == Counted(1)
    assert summary(close_at(windows, T0 + 60)) == [("s1", 0, 60, 2)]


def test_ids_are_per_window_and_per_key() -> None:
    windows = PartitionWindows(define(id_field="id"))
    windows.add(event("e1", T0 + 10), arrived_at=T0 + 11)
    # The same id for another student, or in another window, is another event.
    assert windows.add(event("e1", T0 + 10, student="s2"), arrived_at=T0 + 12) == Counted(1)
    assert windows.add(event("e1", T0 + 70), arrived_at=T0 + 71) == Counted(1)
    assert summary(close_at(windows, T0 + 200)) == [("s1", 0, 60, 1), ("s2", 0, 60, 1), ("s1", 60, 120, 1)]


def test_a_hopping_copy_counts_only_in_the_windows_that_had_not_counted_it() -> None:
    windows = PartitionWindows(define(window=Hopping(60, 20), grace=0, id_field="id"))
    assert windows.add(event("e1", T0 + 45), arrived_at=T0 + 46) == Counted(3)
    # The first of its windows closed; the copy is already in the other two.
    advance(windows, T0 + 61)
    assert summary(windows.close_due()) == [("s1", 0, 60, 1)]
    assert windows.add(event("e1", T0 + 45), arrived_at=T0 + 62) == Duplicate("e1")
    assert summary(close_at(windows, T0 + 200)) == [("s1", 20, 80, 1), ("s1", 40, 100, 1)]


def test_a_copy_after_its_window_closed_is_late_not_counted_again() -> None:
    windows = PartitionWindows(define(grace=5, id_field="id"))
    windows.add(event("e1", T0 + 10), arrived_at=T0 + 11)
    assert summary(close_at(windows, T0 + 65)) == [("s1", 0, 60, 1)]
    assert isinstance(windows.add(event("e1", T0 + 10), arrived_at=T0 + 66), Late)


def test_sessions_remember_ids_through_merges() -> None:
    windows = PartitionWindows(define(window=Session(10), grace=30, id_field="id"))
    windows.add(event("a", T0 + 0), arrived_at=T0 + 1)
    windows.add(event("b", T0 + 15), arrived_at=T0 + 16)
    windows.add(event("c", T0 + 8), arrived_at=T0 + 22)  # [8, 18) bridges the two: one session now
    for copy in (event("a", T0 + 0), event("b", T0 + 15), event("c", T0 + 8)):
        assert windows.add(copy, arrived_at=T0 + 25) == Duplicate(copy["id"])
    assert summary(close_at(windows, T0 + 100)) == [("s1", 0, 25, 3)]


def test_ids_survive_a_restart_through_the_changelog() -> None:
    definition = define(id_field="id")
    windows = PartitionWindows(definition)
    windows.add(event("e2", T0 + 10), arrived_at=T0 + 11)
    windows.add(event("e1", T0 + 12), arrived_at=T0 + 13)
    changes = windows.take_changes()
    assert changes[storage_key(0)]["ids"] == ["e1", "e2"]  # sorted: the same state, the same bytes
    restored = PartitionWindows(definition)
    restored.load(changes.items())
    assert restored.add(event("e1", T0 + 12), arrived_at=T0 + 50) == Duplicate("e1")
    assert restored.add(event("e3", T0 + 14), arrived_at=T0 + 51) == Counted(1)
    assert summary(close_at(restored, T0 + 60)) == [("s1", 0, 60, 3)]


def test_a_window_stored_without_ids_remembers_ids_from_now_on() -> None:
    # Stored by a version without an id_field: its earlier events cannot be recognised, later ones can.
    old = PartitionWindows(define())
    old.add(event("e1", T0 + 10), arrived_at=T0 + 11)
    windows = PartitionWindows(define(id_field="id"))
    windows.load(old.take_changes().items())
    assert windows.add(event("e2", T0 + 20), arrived_at=T0 + 21) == Counted(1)
    assert windows.add(event("e2", T0 + 20), arrived_at=T0 + 22) == Duplicate("e2")
    assert summary(close_at(windows, T0 + 60)) == [("s1", 0, 60, 2)]


@pytest.mark.parametrize(
    ("stored_ids", "problem"),
    [
        pytest.param("e1", "ids must be a list", id="not-a-list"),
        pytest.param(["e1", ""], "ids must be a list of non-empty strings", id="an-empty-id"),
        pytest.param([1], "ids must be a list of non-empty strings", id="a-number"),
    ],
)
def test_bad_stored_ids_are_refused_naming_the_key(stored_ids: Any, problem: str) -> None:
    windows = PartitionWindows(define(id_field="id"))
    value = {"end_us": int((T0 + 60) * 1_000_000), "events": 1, "state": _state(), "ids": stored_ids}
    with pytest.raises(StateError, match=problem) as raised:
        windows.load([(storage_key(0), value)])
    assert storage_key(0) in str(raised.value)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        pytest.param({"id": None}, "an id must be a non-empty string", id="null"),
        pytest.param({"id": ""}, "an id must be a non-empty string", id="empty"),
        pytest.param({"id": 7}, "an id must be a non-empty string", id="a-number"),
    ],
)
def test_an_event_without_a_usable_id_is_invalid_and_changes_nothing(changes: dict[str, Any], problem: str) -> None:
    windows = PartitionWindows(define(id_field="id"))
    with pytest.raises(InvalidEventError, match=problem) as raised:
        windows.add({**event("x", T0 + 10), **changes}, arrived_at=T0 + 11)
    assert raised.value.field == "id"
    missing = {k: v for k, v in event("x", T0 + 10).items() if k != "id"}
    with pytest.raises(InvalidEventError, match="no such field"):
        windows.add(missing, arrived_at=T0 + 11)
    assert windows.take_changes() == {}


def _state() -> dict[str, Any]:
    windows = PartitionWindows(define())
    windows.add(event("x", T0 + 1), arrived_at=T0 + 2)
    return next(v for k, v in windows.take_changes().items() if v and "state" in v)["state"]
