"""PartitionWindows: window math, per-key aggregation, sessions and bad input.

Lateness is in test_windowed_lateness.py, change tracking and restore in test_windowed_state.py,
failing windows in test_windowed_failures.py. Here every event arrives in time unless said
otherwise, and windows close when a test promises the watermark past their end + grace.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from tables.aggregators import Aggregates, Count
from tables.errors import InvalidEventError
from tables.outcomes import ClosedWindow, Counted, Ignored, Late
from tables.windowed import PartitionWindows
from tables.windows import Hopping, Session, Tumbling, Window

from .clock import T0
from .windowed_helpers import advance, answer, close_at, define, storage_key, summary, values_of

# --- fixed windows -------------------------------------------------------------------------------


def test_tumbling_windows_aggregate_per_key_and_close_once() -> None:
    windows = PartitionWindows(define(grace=5))
    for event in [
        answer("s1", T0 + 1, 3, "q1"),
        answer("s2", T0 + 2, 7),
        answer("s1", T0 + 30, 5, "q2"),
        answer("s1", T0 + 59, None, "q2"),  # a missing score is counted, not summed
        answer("s1", T0 + 64.999999),
        answer("s1", T0 + 65, 2),
    ]:
        assert windows.add(event, arrived_at=T0 + 61) == Counted(1)
    # Nothing closes before anything is promised, nor one microsecond before end + grace.
    assert windows.close_due() == []
    assert close_at(windows, T0 + 64.999999) == []
    assert close_at(windows, T0 + 65) == [
        ClosedWindow(
            metric="answers",
            key={"student_id": "s1"},
            start=T0,
            end=T0 + 60,
            events=3,
            values={"n": 3, "total": 8, "low": 3, "high": 5, "avg": 4.0, "last": 5, "questions": 2},
        ),
        ClosedWindow(
            metric="answers",
            key={"student_id": "s2"},
            start=T0,
            end=T0 + 60,
            events=1,
            values={"n": 1, "total": 7, "low": 7, "high": 7, "avg": 7.0, "last": 7, "questions": 1},
        ),
    ]
    assert close_at(windows, T0 + 1000) == [
        ClosedWindow(
            "answers",
            {"student_id": "s1"},
            T0 + 60,
            T0 + 120,
            2,
            {"n": 2, "total": 3, "low": 1, "high": 2, "avg": 1.5, "last": 2, "questions": 1},
        ),
    ]
    # Each window is reported exactly once.
    assert close_at(windows, T0 + 2000) == []
    assert windows.close_due() == []


def test_an_event_exactly_at_a_window_end_belongs_to_the_next_window() -> None:
    windows = PartitionWindows(define(grace=1000))
    windows.add(answer("s1", T0 + 59.999999), T0)
    windows.add(answer("s1", T0 + 60), T0)
    assert summary(close_at(windows, T0 + 10_000)) == [("s1", 0, 60, 1), ("s1", 60, 120, 1)]


def test_hopping_event_counts_in_every_window_holding_it() -> None:
    windows = PartitionWindows(define(Hopping(60, 20), grace=1000))
    assert windows.add(answer("s1", T0 + 45), T0) == Counted(3)
    assert windows.add(answer("s1", T0 + 60), T0) == Counted(3)
    assert summary(close_at(windows, T0 + 10_000)) == [
        ("s1", 0, 60, 1),
        ("s1", 20, 80, 2),
        ("s1", 40, 100, 2),
        ("s1", 60, 120, 1),
    ]


def test_windows_close_in_order_of_end_start_key_whatever_the_order_of_arrival() -> None:
    windows = PartitionWindows(define(Hopping(60, 30), grace=0))
    for student, at in (("s2", 70), ("s1", 70), ("s2", 10), ("s1", 40)):
        windows.add(answer(student, T0 + at), T0)
    assert summary(close_at(windows, T0 + 1000)) == [
        ("s2", -30, 30, 1),
        ("s1", 0, 60, 1),
        ("s2", 0, 60, 1),
        ("s1", 30, 90, 2),
        ("s2", 30, 90, 1),
        ("s1", 60, 120, 1),
        ("s2", 60, 120, 1),
    ]


def test_next_due_is_the_watermark_at_which_the_earliest_open_window_closes() -> None:
    windows = PartitionWindows(define(grace=5))
    assert windows.next_due() is None
    windows.add(answer("s1", T0 + 130), T0 + 11)  # dated ahead of its arrival: a fast device clock
    windows.add(answer("s2", T0 + 10), T0 + 11)
    assert windows.next_due() == T0 + 65
    # next_due does not depend on the watermark: a window already due still says when it was.
    advance(windows, T0 + 100)
    assert windows.next_due() == T0 + 65
    assert summary(windows.close_due()) == [("s2", 0, 60, 1)]
    assert windows.next_due() == T0 + 185
    assert summary(close_at(windows, T0 + 185)) == [("s1", 120, 180, 1)]
    assert windows.next_due() is None


def test_an_older_promise_does_not_reopen_closed_windows() -> None:
    windows = PartitionWindows(define())
    windows.add(answer("s1", T0 + 10), T0 + 11)
    assert len(close_at(windows, T0 + 100)) == 1
    # A reading from a clock behind the first must not lower the watermark windows closed at.
    assert advance(windows, T0 + 50) is False
    assert windows.watermark() == T0 + 100
    assert isinstance(windows.add(answer("s1", T0 + 20), T0 + 100), Late)


def test_where_ignores_events_entirely() -> None:
    windows = PartitionWindows(define(where=lambda e: e.get("kind") == "answer"))
    # Not validated either: a bad time field does not matter to an ignored event.
    assert windows.add({"kind": "hint"}, T0) == windows.add({"kind": "hint", "ts": "bad"}, T0) == Ignored()
    assert windows.take_changes() == {}
    assert windows.next_due() is None
    assert windows.add({"kind": "answer", **answer("s1", T0)}, T0) == Counted(1)


@pytest.mark.parametrize(
    ("event", "field", "problem"),
    [
        ({"student_id": "s1", "score": 1}, "ts", "no such field"),
        ({"student_id": "s1", "ts": "tomorrow", "score": 1}, "ts", "not an RFC 3339 timestamp"),
        ({"student_id": "s1", "ts": datetime(2024, 5, 1, 10), "score": 1}, "ts", "naive datetime"),
        ({"ts": T0, "score": 1}, "student_id", "no such field"),
        ({"student_id": "s1", "ts": T0 + 1, "score": "ten"}, "score", "not a finite number"),
        ({"student_id": "s1", "ts": T0 + 1, "score": float("inf")}, "score", "not a finite number"),
        ({"student_id": "s1", "ts": T0 + 1, "score": 1, "question": ["q"]}, "question", "not a string"),
    ],
)
@pytest.mark.parametrize("window", [Tumbling(60), Hopping(60, 20), Session(60)], ids=repr)
def test_invalid_events_are_rejected_with_nothing_applied(
    event: dict[str, Any], field: str, problem: str, window: Window
) -> None:
    windows = PartitionWindows(define(window, grace=1000))
    windows.add(answer("s1", T0 + 1, 5), T0 + 1)
    advance(windows, T0 + 1)
    before = windows.take_changes()
    with pytest.raises(InvalidEventError) as caught:
        windows.add(event, T0 + 1)
    assert caught.value.field == field
    assert problem in caught.value.problem
    # No trace: no change to store, no watermark moved, and the windows hold only the good event.
    assert windows.take_changes() == {}
    assert windows.watermark() == T0 + 1
    closed = close_at(windows, T0 + 10_000)
    assert [(w.events, values_of(w)["total"]) for w in closed] == [(1, 5)] * len(closed)
    assert set(before) == {"answers.watermark", *(storage_key(w.start - T0) for w in closed)}


@dataclass
class AnswerRecord:
    student_id: str
    ts: Any
    score: int
    question: str = "q"


def test_events_may_be_objects_with_any_accepted_time_form() -> None:
    windows = PartitionWindows(define(grace=1000))
    windows.add(AnswerRecord("s1", datetime(2024, 5, 1, 10, 0, 5, tzinfo=UTC), 1), T0)
    windows.add(AnswerRecord("s1", "2024-05-01T12:00:06+02:00", 2), T0)
    windows.add({"student_id": "s1", "ts": T0 + 7, "score": 3, "question": "q"}, T0)
    assert [(w.events, values_of(w)["last"]) for w in close_at(windows, T0 + 10_000)] == [(3, 3)]


class Streak:
    """A user-defined aggregator: the longest run of correct answers."""

    def initialize(self) -> list[int]:
        return [0, 0]

    def agg(self, state: list[int], event: Any, ts: float) -> list[int]:
        current = state[0] + 1 if event["correct"] else 0
        return [current, max(state[1], current)]

    def result(self, state: list[int]) -> int:
        return state[1]


def test_user_defined_aggregators_work_in_windows() -> None:
    windows = PartitionWindows(define(aggregates=Aggregates({"streak": Streak(), "n": Count()})))
    for i, correct in enumerate([True, True, False, True, True, True, False]):
        windows.add({"student_id": "s1", "ts": T0 + i, "correct": correct}, T0 + 10)
    assert [values_of(w) for w in close_at(windows, T0 + 100)] == [{"streak": 3, "n": 7}]


# --- session windows -----------------------------------------------------------------------------


def sessions(grace: float = 1000, gap: float = 10) -> PartitionWindows:
    return PartitionWindows(define(Session(gap), grace=grace))


def test_an_event_within_the_gap_extends_the_session() -> None:
    windows = sessions()
    for t in (0, 5, 14.5):
        assert windows.add(answer("s1", T0 + t), T0) == Counted(1)
    assert summary(close_at(windows, T0 + 10_000)) == [("s1", 0, 24.5, 3)]


def test_an_event_exactly_one_gap_after_the_last_starts_a_new_session() -> None:
    windows = sessions()
    windows.add(answer("s1", T0), T0)
    windows.add(answer("s1", T0 + 10), T0)
    windows.add(answer("s2", T0 + 5), T0)
    assert summary(close_at(windows, T0 + 10_000)) == [("s1", 0, 10, 1), ("s2", 5, 15, 1), ("s1", 10, 20, 1)]


def test_an_earlier_event_exactly_one_gap_before_a_session_starts_its_own() -> None:
    windows = sessions()
    windows.add(answer("s1", T0 + 20), T0)
    windows.add(answer("s1", T0 + 10), T0)
    assert summary(close_at(windows, T0 + 10_000)) == [("s1", 10, 20, 1), ("s1", 20, 30, 1)]


def test_an_earlier_event_moves_the_session_start_and_its_storage_key() -> None:
    windows = sessions()
    windows.add(answer("s1", T0 + 20, 2), T0)
    assert set(windows.take_changes()) == {storage_key(20)}
    windows.add(answer("s1", T0 + 12, 1), T0)
    changes = windows.take_changes()
    assert changes[storage_key(20)] is None
    assert changes[storage_key(12)]["end_us"] == round((T0 + 30) * 1_000_000)  # type: ignore[index]
    [closed] = close_at(windows, T0 + 10_000)
    assert (closed.start - T0, closed.end - T0, values_of(closed)["last"]) == (12, 30, 2)


def test_an_event_bridging_two_sessions_merges_them() -> None:
    windows = sessions()
    for t, score in ((0, 1), (2, 2), (15, 30), (20, 40)):
        windows.add(answer("s1", T0 + t, score, f"q{score}"), T0)
    windows.take_changes()
    assert windows.add(answer("s1", T0 + 8, 5, "q1"), T0) == Counted(1)
    changes = windows.take_changes()
    assert changes[storage_key(15)] is None
    assert changes[storage_key(0)]["events"] == 5  # type: ignore[index]
    assert close_at(windows, T0 + 10_000) == [
        ClosedWindow(
            "answers",
            {"student_id": "s1"},
            T0,
            T0 + 30,
            5,
            {"n": 5, "total": 78, "low": 1, "high": 40, "avg": 15.6, "last": 40, "questions": 4},
        ),
    ]


def test_a_session_closes_at_last_event_plus_gap_plus_grace() -> None:
    windows = sessions(grace=5)
    windows.add(answer("s1", T0), T0)
    assert windows.next_due() == T0 + 15
    windows.add(answer("s1", T0 + 8), T0 + 1)
    # The session now ends at T0 + 18: it closes at watermark T0 + 23, not at its first T0 + 15.
    assert windows.next_due() == T0 + 23
    assert close_at(windows, T0 + 22.999999) == []
    assert summary(close_at(windows, T0 + 23)) == [("s1", 0, 18, 2)]
    assert windows.next_due() is None


def test_an_event_arriving_after_its_keys_session_closed_starts_a_new_one_even_overlapping() -> None:
    # s1's session [0, 10) closes at 10 (grace 0). An event at 9.5 arriving at 10 came too late
    # to extend it, but its own session [9.5, 19.5) is still open: it starts a new session, and
    # the two overlap in time. A window holds only what arrived before its end + grace.
    windows = sessions(grace=0)
    windows.add(answer("s1", T0), T0 + 1)
    assert windows.add(answer("s1", T0 + 9.5), T0 + 10) == Counted(1)
    assert summary(close_at(windows, T0 + 100)) == [("s1", 0, 10, 1), ("s1", 9.5, 19.5, 1)]


def test_due_sessions_are_closed_whether_or_not_close_due_ran() -> None:
    # The same records, collected as soon as the watermark allows or only at the end, give the
    # same sessions: whether [0, 10) was still in the state does not change where 9.5 goes.
    records = [(answer("s1", T0 + t), T0 + arrived) for t, arrived in ((0, 1), (9.5, 10), (12, 12))]
    collected_early = sessions(grace=0)
    early = []
    for event, arrived_at in records:
        early += close_at(collected_early, arrived_at)
        collected_early.add(event, arrived_at)
    collected_late = sessions(grace=0)
    for event, arrived_at in records:
        collected_late.add(event, arrived_at)
    assert early + close_at(collected_early, T0 + 100) == close_at(collected_late, T0 + 100)
    assert summary(early) == [("s1", 0, 10, 1)]
