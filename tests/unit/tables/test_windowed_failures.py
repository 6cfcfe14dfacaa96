"""Failing windows: each window closes on its own, and one that cannot be computed fails alone.

An aggregator or ``finalize`` that raises, or a result holding NaN or an infinity anywhere (results
are written as strict JSON), gives a FailedWindow in its place among the ClosedWindows; the window
leaves the state all the same, so it is reported exactly once and holds up nothing else.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from tables.aggregators import Aggregates, Count, Mean, Sum
from tables.outcomes import ClosedWindow, FailedWindow, first_non_finite
from tables.windowed import PartitionWindows
from tables.windows import Session

from .clock import T0
from .windowed_helpers import advance, answer, close_at, define, storage_key, summary

INF, NAN = math.inf, math.nan
HUGE = 1.7e308  # finite; two of them sum to inf
OVERFLOW = "ValueError: value total is not a finite number"


class Accuracy:
    """A user-defined aggregator with a bug: 0 / 0 for a window whose answers were all skipped."""

    def initialize(self) -> list[int]:
        return [0, 0]

    def agg(self, state: list[int], event: Any, ts: float) -> list[int]:
        if event.get("skipped"):
            return state
        return [state[0] + (1 if event["score"] > 0 else 0), state[1] + 1]

    def result(self, state: list[int]) -> float:
        return state[0] / state[1]


def test_an_aggregator_raising_for_one_key_fails_that_window_only() -> None:
    windows = PartitionWindows(define(aggregates=Aggregates({"n": Count(), "accuracy": Accuracy()})))
    for student, skipped in (("s1", False), ("s2", True), ("s2", True), ("s3", False)):
        windows.add({**answer(student, T0 + 10), "skipped": skipped}, T0 + 11)
    windows.add(answer("s2", T0 + 70), T0 + 12)
    windows.take_changes()
    assert close_at(windows, T0 + 60) == [
        ClosedWindow("answers", {"student_id": "s1"}, T0, T0 + 60, 1, {"n": 1, "accuracy": 1.0}),
        FailedWindow("answers", {"student_id": "s2"}, T0, T0 + 60, 2, "ZeroDivisionError: division by zero"),
        ClosedWindow("answers", {"student_id": "s3"}, T0, T0 + 60, 1, {"n": 1, "accuracy": 1.0}),
    ]
    # The failed window left the state like the others: deleted from storage, never again reported.
    changes = windows.take_changes()
    assert {changes[storage_key(0, s)] for s in ("s1", "s2", "s3")} == {None}
    # The same key's next window is not poisoned by the failure.
    assert close_at(windows, T0 + 1000) == [
        ClosedWindow("answers", {"student_id": "s2"}, T0 + 60, T0 + 120, 1, {"n": 1, "accuracy": 1.0}),
    ]
    assert windows.next_due() is None


def test_a_sum_reaching_infinity_fails_its_window_with_the_value_named() -> None:
    windows = PartitionWindows(define(aggregates=Aggregates({"n": Count(), "total": Sum("score")})))
    windows.add(answer("s1", T0 + 1, HUGE), T0 + 2)
    windows.add(answer("s1", T0 + 2, HUGE), T0 + 2)  # each is a finite number: both are accepted
    windows.add(answer("s2", T0 + 3, 4), T0 + 3)
    windows.add(answer("s1", T0 + 61, 5), T0 + 3)
    closed = close_at(windows, T0 + 60)
    assert closed == [
        FailedWindow("answers", {"student_id": "s1"}, T0, T0 + 60, 2, OVERFLOW),
        ClosedWindow("answers", {"student_id": "s2"}, T0, T0 + 60, 1, {"n": 1, "total": 4}),
    ]
    assert summary(close_at(windows, T0 + 120)) == [("s1", 60, 120, 1)]
    assert close_at(windows, T0 + 10_000) == []


def test_the_first_non_finite_value_in_result_order_is_named() -> None:
    # Mean and Sum both overflow; the error names the first, in the order the metric lists them.
    aggregates = Aggregates({"n": Count(), "avg": Mean("score"), "total": Sum("score")})
    windows = PartitionWindows(define(aggregates=aggregates))
    windows.add(answer("s1", T0 + 1, HUGE), T0 + 1)
    windows.add(answer("s1", T0 + 2, HUGE), T0 + 2)
    [failed] = close_at(windows, T0 + 60)
    assert isinstance(failed, FailedWindow)
    assert failed.error == "ValueError: value avg is not a finite number"


def test_a_finalize_raising_fails_every_window_it_raises_for_and_no_other() -> None:
    def finalize(results: dict[str, Any]) -> dict[str, Any]:
        if results["total"] < 0:
            raise RuntimeError(f"negative total {results['total']}")
        return {"double": results["total"] * 2}

    aggregates = Aggregates({"total": Sum("score")}, finalize=finalize)
    windows = PartitionWindows(define(grace=5, aggregates=aggregates))
    windows.add(answer("s1", T0 + 10, 3), T0 + 11)
    windows.add(answer("s2", T0 + 20, -1), T0 + 21)
    windows.add(answer("s3", T0 + 30, 4), T0 + 31)
    results = close_at(windows, T0 + 65)
    assert [(r.key["student_id"], type(r).__name__) for r in results] == [
        ("s1", "ClosedWindow"),
        ("s2", "FailedWindow"),
        ("s3", "ClosedWindow"),
    ]
    assert results[1] == FailedWindow(
        "answers", {"student_id": "s2"}, T0, T0 + 60, 1, "RuntimeError: negative total -1"
    )
    assert [r.values for r in results if isinstance(r, ClosedWindow)] == [
        {"total": 3, "double": 6},
        {"total": 4, "double": 8},
    ]


def test_a_nested_non_finite_value_from_finalize_is_named_by_its_path() -> None:
    def finalize(results: dict[str, Any]) -> dict[str, Any]:
        return {"spread": {"by_question": [1.0, results["n"] / 2, NAN]}}

    windows = PartitionWindows(define(aggregates=Aggregates({"n": Count()}, finalize=finalize)))
    windows.add(answer("s1", T0 + 1), T0 + 1)
    [failed] = close_at(windows, T0 + 60)
    assert isinstance(failed, FailedWindow)
    assert failed.error == "ValueError: value spread.by_question.2 is not a finite number"


def test_a_session_that_cannot_be_computed_fails_alone_and_once() -> None:
    windows = PartitionWindows(define(Session(10), aggregates=Aggregates({"total": Sum("score")})))
    windows.add(answer("s1", T0 + 1, HUGE), T0 + 1)
    windows.add(answer("s1", T0 + 2, HUGE), T0 + 2)
    windows.add(answer("s2", T0 + 3, 7), T0 + 3)
    assert close_at(windows, T0 + 13) == [
        FailedWindow("answers", {"student_id": "s1"}, T0 + 1, T0 + 12, 2, OVERFLOW),
        ClosedWindow("answers", {"student_id": "s2"}, T0 + 3, T0 + 13, 1, {"total": 7}),
    ]
    assert close_at(windows, T0 + 10_000) == []
    assert windows.next_due() is None


class Score(float):
    """A float subclass, as numpy's float64 is."""


# (result, the path of its first non-finite number or None)
NOT_FINITE_CASES = [
    pytest.param({"n": 3, "avg": 1.5, "name": "nan", "none": None, "flag": True}, None, id="all-finite"),
    pytest.param({"big": 10**400}, None, id="a-huge-int-is-exact"),
    pytest.param({"avg": NAN}, "avg", id="nan"),
    pytest.param({"avg": INF}, "avg", id="inf"),
    pytest.param({"avg": -INF}, "avg", id="minus-inf"),
    pytest.param({"first": INF, "second": NAN}, "first", id="the-first-in-order"),
    pytest.param({"a": {"b": {"c": INF}}}, "a.b.c", id="nested-dicts"),
    pytest.param({"a": [1.0, 2.0, NAN]}, "a.2", id="list-index"),
    pytest.param({"a": [{"x": 1.0}, {"x": -INF}]}, "a.1.x", id="dict-in-list"),
    pytest.param({"a": [[1.0], [2.0, NAN]]}, "a.1.1", id="list-in-list"),
    pytest.param({"a": (1.0, INF)}, "a.1", id="tuple"),
    pytest.param({"a": Score(INF)}, "a", id="float-subclass"),
    pytest.param({"a": Score(2.5)}, None, id="finite-float-subclass"),
    pytest.param(NAN, "(the result)", id="a-bare-non-finite-result"),
    pytest.param([1.0, INF], "1", id="a-bare-list"),
]


@pytest.mark.parametrize(("result", "path"), NOT_FINITE_CASES)
def test_not_finite_names_the_path_of_the_first_non_finite_number(result: Any, path: str | None) -> None:
    assert first_non_finite(result) == path


def test_an_interrupt_while_closing_leaves_the_unclosed_windows_to_a_later_call() -> None:
    # Not the window's fault (Ctrl-C, cancellation): no FailedWindow, and nothing lost either.
    interrupts = iter([KeyboardInterrupt()])

    def finalize(values: dict[str, Any]) -> dict[str, Any]:
        error = next(interrupts, None)
        if error is not None:
            raise error
        return {}

    windows = PartitionWindows(define(aggregates=Aggregates({"n": Count()}, finalize=finalize)))
    windows.add(answer("s1", T0 + 1), arrived_at=T0 + 1)
    windows.add(answer("s2", T0 + 1), arrived_at=T0 + 1)
    advance(windows, T0 + 1000)
    with pytest.raises(KeyboardInterrupt):
        windows.close_due()
    assert summary(windows.close_due()) == [("s1", 0, 60, 1), ("s2", 0, 60, 1)]
