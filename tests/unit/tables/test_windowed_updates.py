"""PartitionWindows.take_updates: the current values of open windows, for provisional results."""

from __future__ import annotations

from typing import Any

import pytest

from tables.aggregators import Aggregates, Count, Sum
from tables.errors import ConfigError
from tables.metric import MetricDefinition
from tables.windowed import ClosedWindow, OpenWindowResult, PartitionWindows
from tables.windows import Hopping, Session, Tumbling, Window

from .clock import T0

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


def answer(student: str, offset: float, score: int = 1) -> dict[str, Any]:
    return {"student_id": student, "ts": T0 + offset, "score": score}


def rows(results: list[OpenWindowResult] | list[ClosedWindow]) -> list[Row]:
    return [(r.key["student_id"], r.start - T0, r.end - T0, r.events, r.values["total"]) for r in results]


# Each case: the window, then steps - ("add", student, event offset, score) at wall time T0 + 1
# (so nothing closes unless a step says so), ("close", wall offset) calling close_due, and
# ("take", rows) checking what take_updates returns at that point.
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
        Tumbling(60),
        [
            ("add", "s1", 10, 1),
            ("add", "s2", 130, 1),  # watermark 130: [0, 60) is due at 65
            ("close", 1),
            ("take", [("s2", 120, 180, 1, 1)]),
        ],
        id="a-window-closed-before-the-call-is-left-out",
    ),
    pytest.param(
        Tumbling(60),
        [
            ("add", "s1", 130, 1),
            ("take", [("s1", 120, 180, 1, 1)]),
            ("add", "s1", 10, 9),  # late: [0, 60) closed at watermark 65
            ("take", []),
        ],
        id="a-late-event-updates-nothing",
    ),
]


@pytest.mark.parametrize(("window", "steps"), CASES)
def test_take_updates(window: Window, steps: list[tuple[Any, ...]]) -> None:
    windows = PartitionWindows(define(window), track_updates=True)
    for step in steps:
        match step:
            case ("add", student, offset, score):
                windows.add(answer(student, offset, score), now=T0 + 1)
            case ("close", offset):
                windows.close_due(now=T0 + offset)
            case ("take", expected):
                assert rows(windows.take_updates()) == expected
            case _:
                raise AssertionError(f"unknown step {step!r}")


def test_the_last_update_of_a_window_equals_its_final_result_when_nothing_else_arrives() -> None:
    windows = PartitionWindows(define(Tumbling(60)), track_updates=True)
    for offset, score in ((5, 1), (25, 4), (45, 2)):
        windows.add(answer("s1", offset, score), now=T0 + offset)
    (current,) = windows.take_updates()
    (closed,) = windows.close_due(now=T0 + 66)
    assert isinstance(current, OpenWindowResult) and isinstance(closed, ClosedWindow)
    assert (current.metric, current.key, current.start, current.end, current.events, current.values) == (
        closed.metric, closed.key, closed.start, closed.end, closed.events, closed.values,
    )
    assert windows.take_updates() == []


def test_take_changes_and_take_updates_do_not_consume_each_other() -> None:
    windows = PartitionWindows(define(Tumbling(60)), track_updates=True)
    windows.add(answer("s1", 10), now=T0 + 1)
    assert windows.take_changes()
    assert rows(windows.take_updates()) == [("s1", 0, 60, 1, 1)]
    windows.add(answer("s1", 20), now=T0 + 1)
    assert rows(windows.take_updates()) == [("s1", 0, 60, 2, 2)]
    assert "answers.window." + str(int(T0) * 1_000_000) + ".s1" in windows.take_changes()


def test_without_tracking_there_are_no_updates() -> None:
    windows = PartitionWindows(define(Tumbling(60)))
    windows.add(answer("s1", 10), now=T0 + 1)
    assert windows.take_updates() == []


def test_sessions_refuse_tracking_updates() -> None:
    with pytest.raises(ConfigError, match="fixed windows only; metric 'answers' has sessions"):
        PartitionWindows(define(Session(60)), track_updates=True)


def test_a_restored_state_has_no_updates_until_a_window_changes() -> None:
    # After a restart or a takeover the bucket already holds the previous owner's last current
    # value, which is at least as new as the restored state: nothing is written again for it.
    source = PartitionWindows(define(Tumbling(60)), track_updates=True)
    source.add(answer("s1", 10), now=T0 + 1)
    source.add(answer("s2", 20), now=T0 + 1)
    restored = PartitionWindows(define(Tumbling(60)), track_updates=True)
    restored.load(source.take_changes().items())
    assert restored.take_updates() == []
    restored.add(answer("s2", 30, 5), now=T0 + 2)
    assert rows(restored.take_updates()) == [("s2", 0, 60, 2, 6)]


def test_a_failing_finalize_takes_nothing() -> None:
    calls = {"n": 0}

    def finalize(values: dict[str, Any]) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("finalize failed")
        return {"double": values["total"] * 2}

    aggregates = Aggregates({"n": Count(), "total": Sum("score")}, finalize=finalize)
    windows = PartitionWindows(define(Tumbling(60), aggregates=aggregates), track_updates=True)
    windows.add(answer("s1", 10, 3), now=T0 + 1)
    with pytest.raises(RuntimeError, match="finalize failed"):
        windows.take_updates()
    (current,) = windows.take_updates()
    assert current.values == {"n": 1, "total": 3, "double": 6}
