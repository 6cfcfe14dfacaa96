"""What the dashboard keeps: recent final windows per student, in order, bounded, and the
struggling rule, from a table of cases."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.dashboard.state import HISTORY, ClassState, Series, Window


def value(metric: str, start: int, final: bool = True, **values: Any) -> bytes:
    return json.dumps({"metric": metric, "final": final, "events": 1, "values": values}).encode()


def put(state: ClassState, metric: str, student: str, start: int, game: str | None = None, **values: Any) -> list[str]:
    key = ".".join([metric, student, *([game] if game else []), str(start)])
    return state.apply(key, metric, student, game, start, value(metric, start, **values))


def test_windows_are_kept_by_start_whatever_order_they_come_in() -> None:
    series = Series(limit=3)
    for start in (20, 0, 10):
        assert series.put(Window(f"k{start}", start, {"values": {}}))
    assert [w.start for w in series.recent()] == [0, 10, 20]
    assert series.latest is not None and series.latest.start == 20


def test_only_the_newest_windows_are_kept() -> None:
    series = Series(limit=3)
    for start in range(0, 50, 10):
        series.put(Window("k", start, {}))
    assert [w.start for w in series.recent()] == [20, 30, 40]
    assert not series.put(Window("k", 0, {}))  # older than everything kept: nothing changes
    assert [w.start for w in series.recent(2)] == [30, 40]


def test_the_same_window_again_changes_nothing_and_a_new_value_replaces_it() -> None:
    series = Series()
    assert series.put(Window("k", 5, {"values": {"a": 1}}))
    assert not series.put(Window("k", 5, {"values": {"a": 1}}))
    assert series.put(Window("k", 5, {"values": {"a": 2}}))
    assert len(series) == 1 and series.recent()[0].values == {"a": 2}


def test_the_class_takes_final_values_of_the_three_metrics_and_nothing_else() -> None:
    state = ClassState()
    assert put(state, "engagement", "ada", 60, answers=2, correct=1)
    assert put(state, "progression", "ada", 120, levels_completed=1, levels_failed=0)
    assert put(state, "outcomes", "ada", 60, game="math", games=1, wins=1)
    assert not state.apply("engagement.ben.0", "engagement", "ben", None, 0, value("engagement", 0, final=False))
    assert not state.apply("engagement.ben.0", "engagement", "ben", None, 0, b"not json")
    assert not state.apply("other.ben.0", "other", "ben", None, 0, value("other", 0))
    assert not state.apply("outcomes.ben.0", "outcomes", "ben", None, 0, value("outcomes", 0))
    assert [s.student_id for s in state.students] == ["ada"]
    ada = state.student("ada")
    assert ada is not None and ada.last_start == 120
    assert list(ada.outcomes) == ["math"]
    assert state.student("ben") is None


def test_students_are_listed_by_id() -> None:
    state = ClassState()
    for student in ("zoe", "ada", "kai"):
        put(state, "engagement", student, 0, answers=0, correct=0)
    assert [s.student_id for s in state.students] == ["ada", "kai", "zoe"]


# (engagement windows as (correct, answers), progression windows as (completed, failed), struggling reasons)
CASES = [
    pytest.param([(1, 4)], [], [], id="too-few-answers-to-judge"),
    pytest.param([(2, 5)], [], ["accuracy 40% (2 of 5 answers)"], id="low-accuracy"),
    pytest.param([(3, 6)], [], [], id="half-right-is-not-struggling"),
    pytest.param([(0, 3), (1, 3)], [], ["accuracy 17% (1 of 6 answers)"], id="summed-over-windows"),
    pytest.param([], [(1, 1)], [], id="too-few-levels-to-judge"),
    pytest.param([], [(1, 2)], ["levels completed 33% (1 of 3)"], id="low-completion"),
    pytest.param([(1, 5)], [(0, 3)], ["accuracy 20% (1 of 5 answers)", "levels completed 0% (0 of 3)"], id="both"),
    pytest.param([(5, 5)] * 10 + [(0, 5)] * 10, [], ["accuracy 0% (0 of 50 answers)"], id="only-the-last-ten-windows"),
]


@pytest.mark.parametrize(("answers", "levels", "reasons"), CASES)
def test_who_is_struggling(answers: list[tuple[int, int]], levels: list[tuple[int, int]], reasons: list[str]) -> None:
    state = ClassState(history=HISTORY)
    for n, (correct, count) in enumerate(answers):
        put(state, "engagement", "s", n * 60, correct=correct, answers=count)
    for n, (completed, failed) in enumerate(levels):
        put(state, "progression", "s", n * 60, levels_completed=completed, levels_failed=failed)
    student = state.student("s")
    assert student is not None
    struggle = student.struggle()
    assert (list(struggle.reasons) if struggle else []) == reasons
    assert [s.student_id for s in state.struggling()] == (["s"] if reasons else [])


def test_the_class_keeps_at_most_its_limit_and_forgets_the_quietest_first() -> None:
    state = ClassState(limit=3)
    for student in ("ada", "ben", "cy"):
        assert put(state, "engagement", student, 0, answers=1) == [student]
    assert put(state, "engagement", "ada", 60, answers=1) == ["ada"]  # ada is no longer the quietest
    assert put(state, "engagement", "dee", 0, answers=1) == ["dee", "ben"]  # ben is forgotten
    assert [s.student_id for s in state.students] == ["ada", "cy", "dee"]
    assert len(state) == len(state.roster) == 3 and state.student("ben") is None
    assert put(state, "engagement", "ada", 60, answers=1) == []  # nothing changed: nobody moves


def test_the_roster_follows_who_is_struggling() -> None:
    state = ClassState()
    put(state, "engagement", "ada", 0, answers=10, correct=1)
    put(state, "engagement", "ben", 0, answers=10, correct=9)
    assert (len(state.roster), state.roster.struggling, state.roster.first_struggling(5)) == (2, 1, ["ada"])
    put(state, "engagement", "ada", 60, answers=30, correct=30)  # 31 of 40 over the recent windows
    assert state.roster.struggling == 0
