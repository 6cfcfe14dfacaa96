"""PartitionWindows.take_updates: the current values of open windows, for provisional results."""

from __future__ import annotations

from typing import Any

import pytest

from tables.aggregators import Aggregates, Count, Sum
from tables.errors import ConfigError
from tables.metric import MetricDefinition
from tables.outcomes import ClosedWindow, OpenWindowResult
from tables.windowed import PartitionWindows
from tables.windows import Hopping, Session, Tumbling, Window

from .clock import T0
from .windowed_helpers import T0_US, advance

#: (student, window start, window end - both as offsets from T0 -, events, total score)
Row = tuple[str, float, float, int, int]


def define(window: Window, *, grace: float = 5, **overrides: Any) -> MetricDefinition:
    arguments: dict[str, Any] = {
        "name": "answers",
        "key_fields": ("student_id",),
        "time_field": "ts",
        "window": window,
        "grace": grace,
        "aggregates": Aggregates({"n": Count(), "total": Sum("score")}),
    }
    arguments.update(overrides)
    return MetricDefinition(**arguments)


def answer(student: str, offset: float, score: float = 1) -> dict[str, Any]:
    return {"student_id": student, "ts": T0 + offset, "score": score}


def rows(results: list[OpenWindowResult] | list[ClosedWindow]) -> list[Row]:
    return [(r.key["student_id"], r.start - T0, r.end - T0, r.events, r.values["total"]) for r in results]


# Each case: the window, then steps - ("add", student, event offset, score), arriving at T0 + 1
# unless a fifth item gives the arrival offset; ("close", watermark offset) promising the
# watermark and calling close_due; and ("take", rows) checking what take_updates returns then.
CASES = [
    pytest.param(
        Tumbling(60),
        [
            ("take", []),
            ("add", "s1", 10, 2),
            ("add", "s1", 20, 3),
            ("take", [("s1", 0, 60, 2, 5)]),
            ("take", []),
        ],
        id="tumbling-two-events-one-update-then-nothing",
    ),
    pytest.param(
        Tumbling(60),
        [
            ("add", "s2", 10, 1),
            ("add", "s1", 62, 4),
            ("add", "s1", 15, 2),
            ("take", [("s1", 0, 60, 1, 2), ("s2", 0, 60, 1, 1), ("s1", 60, 120, 1, 4)]),
        ],
        id="tumbling-ordered-by-end-start-key",
    ),
    pytest.param(
        Tumbling(60),
        [
            ("add", "s1", 10, 1),
            ("take", [("s1", 0, 60, 1, 1)]),
            ("add", "s2", 20, 7),
            ("take", [("s2", 0, 60, 1, 7)]),
            ("add", "s1", 30, 1),
            ("take", [("s1", 0, 60, 2, 2)]),
        ],
        id="tumbling-only-windows-changed-since-the-last-call",
    ),
    pytest.param(
        Hopping(60, 30),
        [
            ("add", "s1", 40, 5),
            ("take", [("s1", 0, 60, 1, 5), ("s1", 30, 90, 1, 5)]),
        ],
        id="hopping-an-event-updates-each-of-its-windows",
    ),
    pytest.param(
        Hopping(60, 30),
        [
            ("add", "s1", 40, 5, 70),  # too late for [0, 60) (closed to arrivals at 65)
            ("take", [("s1", 30, 90, 1, 5)]),
        ],
        id="hopping-only-the-windows-the-event-counted-in",
    ),
    pytest.param(
        Tumbling(60),
        [
            ("add", "s1", 10, 1),
            ("add", "s2", 130, 1),
            ("close", 65),
            ("take", [("s2", 120, 180, 1, 1)]),
        ],
        id="a-window-closed-before-the-call-is-left-out",
    ),
    pytest.param(
        Tumbling(60),
        [
            ("add", "s1", 130, 1),
            ("take", [("s1", 120, 180, 1, 1)]),
            ("add", "s1", 10, 9, 65),  # late: [0, 60) closed to arrivals at 65
            ("take", []),
        ],
        id="a-late-event-updates-nothing",
    ),
    pytest.param(
        Tumbling(60),
        [
            ("add", "s1", 10, 1),
            ("close", 64),  # the watermark moved, nothing closed: no update either
            ("take", [("s1", 0, 60, 1, 1)]),
            ("close", 64.5),
            ("take", []),
        ],
        id="a-moving-watermark-updates-nothing",
    ),
]


@pytest.mark.parametrize(("window", "steps"), CASES)
def test_take_updates(window: Window, steps: list[tuple[Any, ...]]) -> None:
    windows = PartitionWindows(define(window), track_updates=True)
    for step in steps:
        match step:
            case ("add", student, offset, score, *arrival):
                windows.add(answer(student, offset, score), T0 + (arrival[0] if arrival else 1))
            case ("close", offset):
                advance(windows, T0 + offset)
                windows.close_due()
            case ("take", expected):
                assert rows(windows.take_updates()) == expected
            case _:
                raise AssertionError(f"unknown step {step!r}")


def test_the_last_update_of_a_window_equals_its_final_result_when_nothing_else_arrives() -> None:
    windows = PartitionWindows(define(Tumbling(60)), track_updates=True)
    for offset, score in ((5, 1), (25, 4), (45, 2)):
        windows.add(answer("s1", offset, score), T0 + offset)
    (current,) = windows.take_updates()
    advance(windows, T0 + 66)
    (closed,) = windows.close_due()
    assert isinstance(current, OpenWindowResult) and isinstance(closed, ClosedWindow)
    assert (current.metric, current.key, current.start, current.end, current.events, current.values) == (
        closed.metric, closed.key, closed.start, closed.end, closed.events, closed.values,
    )
    assert windows.take_updates() == []


def test_take_changes_and_take_updates_do_not_consume_each_other() -> None:
    windows = PartitionWindows(define(Tumbling(60)), track_updates=True)
    windows.add(answer("s1", 10), T0 + 1)
    assert windows.take_changes()
    assert rows(windows.take_updates()) == [("s1", 0, 60, 1, 1)]
    windows.add(answer("s1", 20), T0 + 1)
    assert rows(windows.take_updates()) == [("s1", 0, 60, 2, 2)]
    assert f"answers.window.{T0_US}.s1" in windows.take_changes()


def test_without_tracking_there_are_no_updates() -> None:
    windows = PartitionWindows(define(Tumbling(60)))
    windows.add(answer("s1", 10), T0 + 1)
    assert windows.take_updates() == []


def test_sessions_refuse_tracking_updates() -> None:
    with pytest.raises(ConfigError, match="fixed windows only; metric 'answers' has sessions"):
        PartitionWindows(define(Session(60)), track_updates=True)


def test_a_restored_state_has_no_updates_until_a_window_changes() -> None:
    # After a restart or a takeover the bucket already holds the previous owner's last current
    # value, which is at least as new as the restored state: nothing is written again for it.
    source = PartitionWindows(define(Tumbling(60)), track_updates=True)
    source.add(answer("s1", 10), T0 + 1)
    source.add(answer("s2", 20), T0 + 1)
    restored = PartitionWindows(define(Tumbling(60)), track_updates=True)
    restored.load(source.take_changes().items())
    assert restored.take_updates() == []
    restored.add(answer("s2", 30, 5), T0 + 2)
    assert rows(restored.take_updates()) == [("s2", 0, 60, 2, 6)]


def test_a_window_whose_result_fails_is_left_out_and_the_others_are_taken() -> None:
    # A provisional value is best effort: a window that cannot be computed now is skipped (its
    # closing reports the failure, if it still fails then) and holds up no other window's value.
    def finalize(values: dict[str, Any]) -> dict[str, Any]:
        if values["total"] < 0:
            raise RuntimeError("negative total")
        return {"double": values["total"] * 2}

    aggregates = Aggregates({"n": Count(), "total": Sum("score")}, finalize=finalize)
    windows = PartitionWindows(define(Tumbling(60), aggregates=aggregates), track_updates=True)
    windows.add(answer("s1", 10, 3), T0 + 1)
    windows.add(answer("s2", 10, -1), T0 + 1)
    (current,) = windows.take_updates()
    assert (current.key, current.values) == ({"student_id": "s1"}, {"n": 1, "total": 3, "double": 6})
    # Skipped, not retried: it comes back when it changes and can be computed again.
    assert windows.take_updates() == []
    windows.add(answer("s2", 20, 5), T0 + 2)
    (current,) = windows.take_updates()
    assert (current.key, current.values) == ({"student_id": "s2"}, {"n": 2, "total": 4, "double": 8})


def test_a_window_whose_value_is_not_finite_is_left_out() -> None:
    windows = PartitionWindows(define(Tumbling(60)), track_updates=True)
    windows.add(answer("s1", 10, 1.7e308), T0 + 1)
    windows.add(answer("s1", 11, 1.7e308), T0 + 1)
    windows.add(answer("s2", 12, 1), T0 + 1)
    assert rows(windows.take_updates()) == [("s2", 0, 60, 1, 1)]
