"""PartitionWindows: counting, closing, lateness, bad input, change tracking and restore."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from tables.aggregators import Aggregates, Count, CountDistinct, Last, Max, Mean, Min, Sum
from tables.errors import InvalidEventError, StateError
from tables.metric import MetricDefinition
from tables.windowed import ClosedWindow, Counted, Ignored, Late, PartitionWindows
from tables.windows import Hopping, Session, Tumbling, Window

from .clock import T0, FakeClock

# T0 is 2024-05-01T10:00:00Z, a whole hour, so minute windows start at T0 + k * 60.
T0_US = int(T0) * 1_000_000


def define(window: Window | None = None, grace: float = 0, **overrides: Any) -> MetricDefinition:
    arguments: dict[str, Any] = {
        "name": "answers",
        "key_fields": ("student_id",),
        "time_field": "ts",
        "window": window or Tumbling(60),
        "grace": grace,
        "aggregates": Aggregates(
            {
                "n": Count(),
                "total": Sum("score"),
                "low": Min("score"),
                "high": Max("score"),
                "avg": Mean("score"),
                "last": Last("score"),
                "questions": CountDistinct("question"),
            }
        ),
    }
    arguments.update(overrides)
    return MetricDefinition(**arguments)


def answer(student: str, at: float, score: int | None = 1, question: str = "q1") -> dict[str, Any]:
    return {"student_id": student, "ts": at, "score": score, "question": question}


def summary(closed: list[ClosedWindow]) -> list[tuple[str, float, float, int]]:
    return [(w.key["student_id"], w.start - T0, w.end - T0, w.events) for w in closed]


def storage_key(start_offset: int, student: str = "s1", metric: str = "answers") -> str:
    return f"{metric}.window.{T0_US + start_offset * 1_000_000}.{student}"


# --- fixed windows -------------------------------------------------------------------------------


def test_tumbling_windows_aggregate_per_key_and_close_once() -> None:
    clock = FakeClock()
    windows = PartitionWindows(define(grace=5))
    for event in [
        answer("s1", T0 + 1, 3, "q1"),
        answer("s2", T0 + 2, 7),
        answer("s1", T0 + 30, 5, "q2"),
        answer("s1", T0 + 59, None, "q2"),
    ]:
        assert windows.add(event, clock.now) == Counted(1)
    assert windows.close_due(clock.now) == []
    windows.add(answer("s1", T0 + 64.999999), clock.now)
    assert windows.close_due(clock.now) == []
    windows.add(answer("s1", T0 + 65, 2), clock.now)
    closed = windows.close_due(clock.now)
    assert closed == [
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
    assert windows.close_due(clock.advance(1000)) == [
        ClosedWindow(
            "answers",
            {"student_id": "s1"},
            T0 + 60,
            T0 + 120,
            2,
            {"n": 2, "total": 3, "low": 1, "high": 2, "avg": 1.5, "last": 2, "questions": 1},
        ),
    ]
    assert windows.close_due(clock.advance(1000)) == []


def test_an_event_exactly_at_a_window_end_belongs_to_the_next_window() -> None:
    windows = PartitionWindows(define(grace=1000))
    windows.add(answer("s1", T0 + 59.999999), T0)
    windows.add(answer("s1", T0 + 60), T0)
    assert summary(windows.close_due(T0 + 10_000)) == [("s1", 0, 60, 1), ("s1", 60, 120, 1)]


def test_hopping_event_counts_in_every_window_holding_it() -> None:
    windows = PartitionWindows(define(Hopping(60, 20), grace=1000))
    assert windows.add(answer("s1", T0 + 45), T0) == Counted(3)
    assert windows.add(answer("s1", T0 + 60), T0) == Counted(3)
    assert summary(windows.close_due(T0 + 10_000)) == [
        ("s1", 0, 60, 1),
        ("s1", 20, 80, 2),
        ("s1", 40, 100, 2),
        ("s1", 60, 120, 1),
    ]


@pytest.mark.parametrize(
    ("event_offset", "watermark_offset", "late"),
    [
        pytest.param(10, 64.999999, False, id="watermark-just-below-end-plus-grace"),
        pytest.param(10, 65, True, id="watermark-at-end-plus-grace"),
        pytest.param(59.999999, 65, True, id="last-microsecond-of-closed-window"),
        pytest.param(60, 65, False, id="start-of-next-window"),
        pytest.param(0, 120, True, id="long-closed"),
    ],
)
def test_window_closes_when_watermark_reaches_end_plus_grace(
    event_offset: float, watermark_offset: float, late: bool
) -> None:
    windows = PartitionWindows(define(grace=5))
    windows.add(answer("other", T0 + watermark_offset), T0)
    outcome = windows.add(answer("s1", T0 + event_offset), T0)
    assert isinstance(outcome, Late) is late


def test_a_late_event_is_reported_with_a_reason_and_not_counted() -> None:
    windows = PartitionWindows(define(grace=5))
    windows.add(answer("s1", T0 + 10, 1), T0)
    windows.add(answer("s1", T0 + 70, 1), T0)
    windows.take_changes()
    outcome = windows.add(answer("s1", T0 + 30, 100), T0)
    assert isinstance(outcome, Late)
    assert (outcome.event_time, outcome.watermark) == (T0 + 30, T0 + 70)
    assert outcome.reason == (
        "metric 'answers': event time 2024-05-01T10:00:30Z is late: its window "
        "[2024-05-01T10:00:00Z, 2024-05-01T10:01:00Z) closed once the watermark reached its end + grace (5s); "
        "the watermark is 2024-05-01T10:01:10Z"
    )
    # Nothing changed: not counted, and the watermark did not move.
    assert windows.take_changes() == {}
    closed = windows.close_due(T0)
    assert [(w.start - T0, w.values["total"]) for w in closed] == [(0, 1)]


def test_a_hopping_event_is_late_only_when_all_its_windows_closed() -> None:
    windows = PartitionWindows(define(Hopping(60, 20)))
    windows.add(answer("s1", T0 + 85), T0)
    # t = 50 lies in [0, 60), [20, 80) and [40, 100); only the last is still open at watermark 85.
    assert windows.add(answer("s1", T0 + 50), T0) == Counted(1)
    outcome = windows.add(answer("s1", T0 + 30), T0)
    assert isinstance(outcome, Late)
    assert "all 3 of its windows, the last [2024-05-01T10:00:20Z, 2024-05-01T10:01:20Z)" in outcome.reason


def test_the_first_event_of_a_partition_is_never_late() -> None:
    windows = PartitionWindows(define())
    assert windows.add(answer("s1", 0), T0) == Counted(1)


def test_an_idle_stream_closes_its_windows_by_wall_clock() -> None:
    clock = FakeClock(now=T0 + 500)
    windows = PartitionWindows(define(grace=5))
    assert windows.next_close_at(clock.now) is None
    windows.add(answer("s1", T0 + 10), clock.now)
    # Watermark T0 + 10 now; the window [T0, T0 + 60) closes at watermark T0 + 65, 55 s from now.
    due_at = windows.next_close_at(clock.now)
    assert due_at == clock.now + 55
    assert windows.close_due(due_at - 0.000001) == []
    assert summary(windows.close_due(due_at)) == [("s1", 0, 60, 1)]
    assert windows.next_close_at(clock.advance(1000)) is None


def test_next_close_at_is_now_when_a_window_is_already_due() -> None:
    windows = PartitionWindows(define())
    windows.add(answer("s1", T0 + 10), T0)
    windows.add(answer("s1", T0 + 300), T0)
    assert windows.next_close_at(T0 + 1) == T0 + 1
    assert len(windows.close_due(T0 + 1)) == 1
    assert windows.next_close_at(T0 + 1) == T0 + 1 + (T0 + 360 - (T0 + 301))


def test_where_ignores_events_entirely() -> None:
    windows = PartitionWindows(define(where=lambda e: e.get("kind") == "answer"))
    # Not validated either: a bad time field does not matter to an ignored event.
    assert windows.add({"kind": "hint"}, T0) == windows.add({"kind": "hint", "ts": "bad"}, T0) == Ignored()
    assert windows.take_changes() == {}
    assert windows.watermark(T0) is None
    assert windows.add({"kind": "answer", **answer("s1", T0)}, T0) == Counted(1)


@pytest.mark.parametrize(
    ("event", "field", "problem"),
    [
        ({"student_id": "s1", "score": 1}, "ts", "no such field"),
        ({"student_id": "s1", "ts": "tomorrow", "score": 1}, "ts", "not an RFC 3339 timestamp"),
        ({"student_id": "s1", "ts": datetime(2024, 5, 1, 10), "score": 1}, "ts", "naive datetime"),
        ({"ts": T0, "score": 1}, "student_id", "no such field"),
        ({"student_id": "s1", "ts": T0 + 1, "score": "ten"}, "score", "not a finite number"),
        ({"student_id": "s1", "ts": T0 + 1, "score": 1, "question": ["q"]}, "question", "not a string"),
    ],
)
@pytest.mark.parametrize("window", [Tumbling(60), Hopping(60, 20), Session(60)], ids=repr)
def test_invalid_events_are_rejected_with_nothing_applied(
    event: dict[str, Any], field: str, problem: str, window: Window
) -> None:
    windows = PartitionWindows(define(window, grace=1000))
    windows.add(answer("s1", T0 + 1, 5), T0)
    before = windows.take_changes()
    with pytest.raises(InvalidEventError) as caught:
        windows.add(event, T0 + 1)
    assert caught.value.field == field
    assert problem in caught.value.problem
    assert windows.take_changes() == {}
    closed = windows.close_due(T0 + 10_000)
    assert [(w.events, w.values["total"]) for w in closed] == [(1, 5)] * len(closed)
    assert set(before) == {"answers.watermark", *(storage_key(int(w.start - T0)) for w in closed)}


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
    assert [(w.events, w.values["last"]) for w in windows.close_due(T0 + 10_000)] == [(3, 3)]


def test_a_wall_clock_stepping_back_does_not_reopen_closed_windows() -> None:
    windows = PartitionWindows(define())
    windows.add(answer("s1", T0 + 10), T0)
    assert len(windows.close_due(T0 + 100)) == 1
    # The clock steps back 100 s (NTP): the window closed at watermark T0 + 110 must stay closed.
    assert isinstance(windows.add(answer("s1", T0 + 20), T0), Late)


def test_a_failing_finalize_removes_no_window() -> None:
    broken = [True]

    def finalize(results: dict[str, Any]) -> dict[str, Any]:
        if broken[0]:
            raise ZeroDivisionError("bug in finalize")
        return {"double": results["n"] * 2}

    windows = PartitionWindows(define(aggregates=Aggregates({"n": Count()}, finalize=finalize)))
    windows.add(answer("s1", T0 + 1), T0)
    windows.add(answer("s2", T0 + 2), T0)
    with pytest.raises(ZeroDivisionError):
        windows.close_due(T0 + 100)
    broken[0] = False
    assert [w.values for w in windows.close_due(T0 + 100)] == [{"n": 1, "double": 2}] * 2


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
        windows.add({"student_id": "s1", "ts": T0 + i, "correct": correct}, T0)
    assert [w.values for w in windows.close_due(T0 + 100)] == [{"streak": 3, "n": 7}]


# --- change tracking and restore -----------------------------------------------------------------


def test_take_changes_coalesces_each_key_once() -> None:
    windows = PartitionWindows(define(grace=10))
    for offset in (1, 2, 3):
        windows.add(answer("s1", T0 + offset, offset), T0)
    changes = windows.take_changes()
    assert set(changes) == {storage_key(0), "answers.watermark"}
    assert changes[storage_key(0)] == {
        "end_us": T0_US + 60_000_000,
        "events": 3,
        "state": {
            "n": 3,
            "total": 6,
            "low": 1,
            "high": 3,
            "avg": [6, 3],
            "last": [T0 + 3, 3],
            "questions": {"s:q1": 1},
        },
    }
    assert changes["answers.watermark"] == {"base_us": T0_US + 3_000_000, "wall_us": T0_US}
    assert windows.take_changes() == {}
    json.dumps(changes, allow_nan=False)

    windows.add(answer("s1", T0 + 61), T0)
    windows.add(answer("s1", T0 + 200), T0)
    windows.add(answer("s1", T0 + 400), T0)
    closed = windows.close_due(T0)
    assert summary(closed) == [("s1", 0, 60, 3), ("s1", 60, 120, 1), ("s1", 180, 240, 1)]
    changes = windows.take_changes()
    # The stored window is deleted; the ones created and closed since the last call never reach
    # the changelog at all.
    assert changes == {
        storage_key(0): None,
        storage_key(360): changes[storage_key(360)],
        "answers.watermark": changes["answers.watermark"],
    }


def replay(log: list[tuple[str, Any]], definition: MetricDefinition) -> PartitionWindows:
    windows = PartitionWindows(definition)
    windows.load(json.loads(json.dumps(log)))
    return windows


@pytest.mark.parametrize("window", [Tumbling(60), Hopping(60, 20), Session(30)], ids=repr)
def test_restore_continues_exactly_where_it_stopped(window: Window) -> None:
    definition = define(window, grace=20)
    events = [answer("s1", T0 + t, t, f"q{t % 3}") for t in (1, 15, 50, 40, 70, 95, 200, 210, 190)]
    clock = FakeClock()
    straight = PartitionWindows(definition)
    expected = []
    for event in events:
        straight.add(event, clock.advance(1))
        expected += straight.close_due(clock.now)
    expected += straight.close_due(clock.advance(10_000))

    clock = FakeClock()
    log: list[tuple[str, Any]] = []
    windows = PartitionWindows(definition)
    got = []
    for i, event in enumerate(events):
        windows.add(event, clock.advance(1))
        got += windows.close_due(clock.now)
        if i % 3 == 2:
            log += windows.take_changes().items()
            windows = replay(log, definition)
    got += windows.close_due(clock.advance(10_000))
    assert got == expected
    assert sum(w.events for w in got) == len(events) * (3 if isinstance(window, Hopping) else 1)


def test_load_replays_in_order_later_pairs_win_and_none_deletes() -> None:
    definition = define(grace=1000)
    window_value = {"end_us": T0_US + 60_000_000, "events": 1, "state": definition.aggregates.initialize()}
    windows = PartitionWindows(definition)
    windows.load(
        [
            ("answers.watermark", {"base_us": T0_US, "wall_us": T0_US}),
            (storage_key(0, "gone"), window_value),
            (storage_key(0, "kept"), {**window_value, "events": 1}),
            (storage_key(0, "gone"), None),
            (storage_key(0, "kept"), {**window_value, "events": 4}),
        ]
    )
    assert windows.take_changes() == {}
    assert [(w.key, w.events) for w in windows.close_due(T0 + 10_000)] == [({"student_id": "kept"}, 4)]


def valid_log() -> list[tuple[str, Any]]:
    windows = PartitionWindows(define())
    windows.add(answer("s1", T0 + 1), T0)
    return list(windows.take_changes().items())


@pytest.mark.parametrize(
    ("mutate", "key", "problem"),
    [
        (lambda log: [("other.window.0.s1", log[0][1]), log[1]], "other.window.0.s1", "not a storage key"),
        (lambda log: [log[0]], "answers.watermark", "the watermark is not"),
        (
            lambda log: [(log[0][0], {**log[0][1], "end_us": T0_US + 1}), log[1]],
            storage_key(0),
            "does not fit",
        ),
        (
            lambda log: [(storage_key(1), {**log[0][1], "end_us": T0_US + 61_000_000}), log[1]],
            storage_key(1),
            "does not fit",
        ),
        (lambda log: [(log[0][0], {**log[0][1], "state": {"n": 1}}), log[1]], storage_key(0), "differ"),
        (lambda log: [(log[0][0], {**log[0][1], "events": 0}), log[1]], storage_key(0), "events an int >= 1"),
        (lambda log: [(log[0][0], {"end_us": 1}), log[1]], storage_key(0), "expected"),
        (lambda log: [(log[0][0], [1, 2]), log[1]], storage_key(0), "expected"),
        (lambda log: [log[0], (log[1][0], {"base_us": "x", "wall_us": 1})], "answers.watermark", "expected"),
    ],
)
def test_load_refuses_state_it_cannot_have_written_and_keeps_the_old_state(
    mutate: Any, key: str, problem: str
) -> None:
    log = valid_log()
    assert [k for k, _ in log] == [storage_key(0), "answers.watermark"]
    windows = PartitionWindows(define())
    windows.add(answer("s9", T0 + 2), T0)
    with pytest.raises(StateError) as caught:
        windows.load(mutate(log))
    assert caught.value.key == key
    assert problem in caught.value.problem
    assert [w.key for w in windows.close_due(T0 + 100)] == [{"student_id": "s9"}]


# --- session windows -----------------------------------------------------------------------------


def sessions(grace: float = 1000, gap: float = 10) -> PartitionWindows:
    return PartitionWindows(define(Session(gap), grace=grace))


def test_an_event_within_the_gap_extends_the_session() -> None:
    windows = sessions()
    for t in (0, 5, 14.5):
        assert windows.add(answer("s1", T0 + t), T0) == Counted(1)
    assert summary(windows.close_due(T0 + 10_000)) == [("s1", 0, 24.5, 3)]


def test_an_event_exactly_one_gap_after_the_last_starts_a_new_session() -> None:
    windows = sessions()
    windows.add(answer("s1", T0), T0)
    windows.add(answer("s1", T0 + 10), T0)
    windows.add(answer("s2", T0 + 5), T0)
    assert summary(windows.close_due(T0 + 10_000)) == [("s1", 0, 10, 1), ("s2", 5, 15, 1), ("s1", 10, 20, 1)]


def test_an_earlier_event_exactly_one_gap_before_a_session_starts_its_own() -> None:
    windows = sessions()
    windows.add(answer("s1", T0 + 20), T0)
    windows.add(answer("s1", T0 + 10), T0)
    assert summary(windows.close_due(T0 + 10_000)) == [("s1", 10, 20, 1), ("s1", 20, 30, 1)]


def test_an_earlier_event_moves_the_session_start_and_its_storage_key() -> None:
    windows = sessions()
    windows.add(answer("s1", T0 + 20, 2), T0)
    assert set(windows.take_changes()) == {storage_key(20), "answers.watermark"}
    windows.add(answer("s1", T0 + 12, 1), T0)
    changes = windows.take_changes()
    assert changes[storage_key(20)] is None
    assert changes[storage_key(12)]["end_us"] == T0_US + 30_000_000  # type: ignore[index]
    [closed] = windows.close_due(T0 + 10_000)
    assert (closed.start - T0, closed.end - T0, closed.values["last"]) == (12, 30, 2)


def test_an_event_bridging_two_sessions_merges_them() -> None:
    windows = sessions()
    for t, score in ((0, 1), (2, 2), (15, 30), (20, 40)):
        windows.add(answer("s1", T0 + t, score, f"q{score}"), T0)
    windows.take_changes()
    assert windows.add(answer("s1", T0 + 8, 5, "q1"), T0) == Counted(1)
    changes = windows.take_changes()
    assert changes[storage_key(15)] is None
    assert changes[storage_key(0)]["events"] == 5  # type: ignore[index]
    assert windows.close_due(T0 + 10_000) == [
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
    assert windows.next_close_at(T0) == T0 + 15
    windows.add(answer("s1", T0 + 8), T0)
    # The watermark is T0 + 8 now, and the session ends at T0 + 18: it closes at watermark T0 + 23.
    assert windows.next_close_at(T0) == T0 + 15
    assert windows.close_due(T0 + 14.999999) == []
    assert summary(windows.close_due(T0 + 15)) == [("s1", 0, 18, 2)]


def test_a_session_event_is_late_when_its_own_session_would_have_closed() -> None:
    windows = sessions(grace=5)
    windows.add(answer("s1", T0 + 100), T0)
    assert windows.add(answer("s2", T0 + 85.000001), T0) == Counted(1)
    outcome = windows.add(answer("s2", T0 + 85), T0)
    assert isinstance(outcome, Late)
    assert (
        "the session it would start, [2024-05-01T10:01:25Z, 2024-05-01T10:01:35Z), closed" in outcome.reason
    )


def test_due_sessions_are_closed_whether_or_not_close_due_ran() -> None:
    # s1's session [0, 10) is due at watermark 10 (grace 0). An event at 9.5 for s1 arrives after
    # that: it overlaps the due session but its own session [9.5, 19.5) is open, so it starts a
    # new one -- the same whether the due session was already collected or not.
    events = [answer("s1", T0), answer("s1", T0 + 10), answer("s1", T0 + 9.5)]
    collected_early = sessions(grace=0)
    early = []
    for event in events:
        collected_early.add(event, T0)
        early += collected_early.close_due(T0)
    collected_late = sessions(grace=0)
    for event in events:
        collected_late.add(event, T0)
    assert early + collected_early.close_due(T0 + 100) == collected_late.close_due(T0 + 100)
    assert summary(early) == [("s1", 0, 10, 1)]
