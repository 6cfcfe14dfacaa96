"""Lateness by arrival: an event counts in each of its windows with end + grace > max(W, arrival).

So an event is late exactly when it arrived at or after its window's end + grace; its own time
only places it. A watermark that passed an arrival still to come (a wrong promise) makes the event
late too, with a reason that says so. Events never move the watermark.
"""

from __future__ import annotations

from typing import Any

import pytest

from tables.outcomes import Counted, Late
from tables.windowed import PartitionWindows
from tables.windows import Hopping, Session, Tumbling, Window

from .clock import T0
from .windowed_helpers import advance, answer, close_at, define, summary

BY_ARRIVAL = "late: arrived at or after its window's end + grace"
BY_WATERMARK = "late: the watermark had already passed"

MINUTE, HOPPING, SESSION = Tumbling(60), Hopping(60, 20), Session(10)


def case(name: str, window: Window, grace: float, *times_and_expected: Any) -> Any:
    """A case: ``name``, ``window``, ``grace``, then occurred_at, arrived_at, the watermark promised
    before (None: nothing promised) as offsets from T0, and the expected outcome."""
    return pytest.param(window, grace, *times_and_expected, id=name)


LATENESS_CASES = [
    # -- tumbling [0, 60), grace 5: closes to arrivals at 65 -------------------------------------
    case("tumbling-arrived-1us-before-end-plus-grace", MINUTE, 5, 10, 64.999999, None, Counted(1)),
    case("tumbling-arrived-exactly-at-end-plus-grace", MINUTE, 5, 10, 65, None, BY_ARRIVAL),
    case("tumbling-last-microsecond-just-in-time", MINUTE, 5, 59.999999, 64.999999, None, Counted(1)),
    case("tumbling-last-microsecond-too-late", MINUTE, 5, 59.999999, 65, None, BY_ARRIVAL),
    case("tumbling-window-end-belongs-to-the-next-window", MINUTE, 5, 60, 65, None, Counted(1)),
    case("tumbling-an-hour-late", MINUTE, 5, 0, 3600, None, BY_ARRIVAL),
    case("tumbling-arrived-before-it-occurred", MINUTE, 5, 10, 5, None, Counted(1)),
    case("tumbling-watermark-1us-before-end-plus-grace", MINUTE, 5, 10, 11, 64.999999, Counted(1)),
    case("tumbling-watermark-passed-an-in-time-arrival", MINUTE, 5, 10, 11, 65, BY_WATERMARK),
    case("tumbling-late-by-arrival-is-said-so-with-any-watermark", MINUTE, 5, 10, 70, 65, BY_ARRIVAL),
    case("tumbling-a-watermark-behind-the-arrival-changes-nothing", MINUTE, 5, 10, 64, 20, Counted(1)),
    case("tumbling-no-grace-1us-before-end", MINUTE, 0, 10, 59.999999, None, Counted(1)),
    case("tumbling-no-grace-at-end", MINUTE, 0, 10, 60, None, BY_ARRIVAL),
    # -- hopping: 50 lies in [0, 60), [20, 80) and [40, 100); grace 5 ----------------------------
    case("hopping-in-time-for-all-three", HOPPING, 5, 50, 64.999999, None, Counted(3)),
    case("hopping-too-late-for-the-first-only", HOPPING, 5, 50, 65, None, Counted(2)),
    case("hopping-in-time-for-the-last-only", HOPPING, 5, 50, 85, None, Counted(1)),
    case("hopping-last-1us-before-end-plus-grace", HOPPING, 5, 50, 104.999999, None, Counted(1)),
    case("hopping-late-for-all-three", HOPPING, 5, 50, 105, None, BY_ARRIVAL),
    case("hopping-watermark-closed-the-first-two", HOPPING, 5, 50, 51, 85, Counted(1)),
    case("hopping-watermark-passed-all-three", HOPPING, 5, 50, 51, 105, BY_WATERMARK),
    case("hopping-arrival-past-the-first-watermark-past-the-last", HOPPING, 5, 50, 70, 105, BY_WATERMARK),
    # -- session: an event at 0 would start [0, 10); grace 5 ---------------------------------------
    case("session-arrived-1us-before-end-plus-grace", SESSION, 5, 0, 14.999999, None, Counted(1)),
    case("session-arrived-exactly-at-end-plus-grace", SESSION, 5, 0, 15, None, BY_ARRIVAL),
    case("session-watermark-1us-before-end-plus-grace", SESSION, 5, 0, 1, 14.999999, Counted(1)),
    case("session-watermark-passed-an-in-time-arrival", SESSION, 5, 0, 1, 15, BY_WATERMARK),
    case("session-arrived-before-it-occurred", SESSION, 5, 100, 1, None, Counted(1)),
    case("session-no-grace-1us-before-end", SESSION, 0, 0, 9.999999, None, Counted(1)),
    case("session-no-grace-at-end", SESSION, 0, 0, 10, None, BY_ARRIVAL),
]


@pytest.mark.parametrize(("window", "grace", "occurred", "arrived", "watermark", "expected"), LATENESS_CASES)
def test_lateness_by_arrival(
    window: Window, grace: float, occurred: float, arrived: float, watermark: float | None, expected: object
) -> None:
    windows = PartitionWindows(define(window, grace=grace))
    if watermark is not None:
        advance(windows, T0 + watermark)
    windows.take_changes()
    outcome = windows.add(answer("s1", T0 + occurred), T0 + arrived)
    if isinstance(expected, Counted):
        assert outcome == expected
        assert windows.take_changes(), "a counted event changes its windows"
    else:
        assert isinstance(outcome, Late)
        assert (outcome.event_time, outcome.arrived_at) == (T0 + occurred, T0 + arrived)
        assert outcome.watermark == (None if watermark is None else T0 + watermark)
        if expected == BY_ARRIVAL:
            assert "at or after" in outcome.reason and "watermark" not in outcome.reason
        else:
            assert "but the watermark had already passed that" in outcome.reason
        # A late event leaves no trace: nothing to store, nothing counted.
        assert windows.take_changes() == {}
        assert windows.next_due() is None
    # Whatever the outcome, the event did not move the watermark.
    assert windows.watermark() == (None if watermark is None else T0 + watermark)


def test_the_reason_for_a_late_arrival_names_the_window_and_when_it_closed() -> None:
    windows = PartitionWindows(define(grace=5))
    outcome = windows.add(answer("s1", T0 + 30), T0 + 65)
    assert outcome == Late(
        reason=(
            "metric 'answers': event time 2024-05-01T10:00:30Z is late: it arrived at "
            "2024-05-01T10:01:05Z, at or after its window [2024-05-01T10:00:00Z, 2024-05-01T10:01:00Z) "
            "closed (2024-05-01T10:01:05Z, its end + grace of 5s)"
        ),
        event_time=T0 + 30,
        arrived_at=T0 + 65,
        watermark=None,
    )


def test_the_reason_for_a_watermark_that_passed_an_in_time_arrival_says_so() -> None:
    # The arrival, 40, was before the window was due to close (65); only a wrong promise (70)
    # makes it late. The reason tells the two apart, so a dead-letter reader can see the cause.
    windows = PartitionWindows(define(grace=5))
    advance(windows, T0 + 70)
    outcome = windows.add(answer("s1", T0 + 30), T0 + 40)
    assert outcome == Late(
        reason=(
            "metric 'answers': event time 2024-05-01T10:00:30Z is late: it arrived at "
            "2024-05-01T10:00:40Z, before its window [2024-05-01T10:00:00Z, 2024-05-01T10:01:00Z) was "
            "due to close (2024-05-01T10:01:05Z), but the watermark had already passed that "
            "(2024-05-01T10:01:10Z)"
        ),
        event_time=T0 + 30,
        arrived_at=T0 + 40,
        watermark=T0 + 70,
    )


def test_a_late_hopping_event_names_the_last_of_its_windows() -> None:
    windows = PartitionWindows(define(Hopping(60, 20)))
    outcome = windows.add(answer("s1", T0 + 30), T0 + 80)
    assert isinstance(outcome, Late)
    last = "[2024-05-01T10:00:20Z, 2024-05-01T10:01:20Z)"
    assert f"at or after all 3 of its windows, the last {last} closed" in outcome.reason


def test_a_late_session_event_names_the_session_it_would_start() -> None:
    windows = PartitionWindows(define(Session(10), grace=5))
    assert windows.add(answer("s2", T0 + 85.000001), T0 + 100) == Counted(1)
    outcome = windows.add(answer("s2", T0 + 85), T0 + 100)
    assert isinstance(outcome, Late)
    session = "[2024-05-01T10:01:25Z, 2024-05-01T10:01:35Z)"
    assert f"at or after the session it would start, {session} closed (" in outcome.reason


def test_the_first_event_of_a_partition_is_judged_by_its_arrival_alone() -> None:
    # Nothing promised yet: an event can still be late on its own arrival.
    windows = PartitionWindows(define())
    assert windows.add(answer("s1", 0), 59.999999) == Counted(1)
    late = windows.add(answer("s1", 0), 60)
    assert isinstance(late, Late) and late.watermark is None


# (window, seconds ahead, s1's window, s2's window) as (start, end) offsets from T0: s1 answers at
# 10 and 11, s2's device says 12 + ahead.
FUTURE_CASES = [
    pytest.param(Tumbling(60), 40, (0, 60), (0, 60), id="tumbling-40s-ahead-lands-in-the-current-window"),
    pytest.param(Tumbling(60), 299, (0, 60), (300, 360), id="tumbling-299s-ahead-lands-in-a-future-window"),
    pytest.param(Session(10), 40, (10, 21), (52, 62), id="session-40s-ahead"),
    pytest.param(Session(10), 299, (10, 21), (311, 321), id="session-299s-ahead"),
]


@pytest.mark.parametrize(("window", "ahead", "s1_window", "s2_window"), FUTURE_CASES)
def test_a_future_dated_event_counts_in_its_own_window_and_delays_no_one(
    window: Window, ahead: float, s1_window: tuple[float, float], s2_window: tuple[float, float]
) -> None:
    # s2's device clock runs `ahead` seconds fast. Its event is counted where its time puts it;
    # the watermark stays where the promises put it, so s1's later answer is still in time and
    # s1's window closes when its own end + grace is promised, not `ahead` seconds later.
    windows = PartitionWindows(define(window, grace=5))
    assert windows.add(answer("s1", T0 + 10), T0 + 11) == Counted(1)
    assert windows.add(answer("s2", T0 + 12 + ahead), T0 + 12) == Counted(1)
    assert windows.watermark() is None
    assert "answers.watermark" not in windows.take_changes()
    # In time by its arrival, whatever s2's clock says (were the watermark the largest event time
    # seen, it would be late in three of the four cases).
    assert windows.add(answer("s1", T0 + 11), T0 + 13) == Counted(1)
    s1_row = ("s1", *s1_window, 2)
    s2_row = ("s2", *s2_window, 1)
    s1_due, s2_due = s1_window[1] + 5, s2_window[1] + 5
    if s2_due == s1_due:
        assert summary(close_at(windows, T0 + s1_due)) == [s1_row, s2_row]
    else:
        assert summary(close_at(windows, T0 + s1_due)) == [s1_row]
        assert windows.next_due() == T0 + s2_due
        assert close_at(windows, T0 + s2_due - 0.000001) == []
        assert summary(close_at(windows, T0 + s2_due)) == [s2_row]
    assert windows.next_due() is None


def test_events_never_move_the_watermark() -> None:
    windows = PartitionWindows(define(grace=5))
    advance(windows, T0 + 20)
    windows.take_changes()
    for occurred, arrived in ((10, 21), (3600, 22), (-3600, 23), (30, 10_000)):
        windows.add(answer("s1", T0 + occurred), T0 + arrived)
        assert windows.watermark() == T0 + 20
    assert "answers.watermark" not in windows.take_changes()
    # The event at 10 closes with its window when that is promised; the one dated an hour ahead
    # waits for its own (the other two were late by arrival).
    assert summary(close_at(windows, T0 + 65)) == [("s1", 0, 60, 1)]
    assert windows.next_due() == T0 + 3665
