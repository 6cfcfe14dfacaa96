"""A page of the overview and its patches: the rows that change, enter or leave the page, and
totals; what one update sends does not grow with the class."""

from __future__ import annotations

import json
from typing import Any

from app.access import EVERY_STUDENT
from app.dashboard.overview import OverviewView
from app.dashboard.state import ClassState


class Only:
    def __init__(self, *students: str) -> None:
        self.students = set(students)

    def may_read(self, student_id: str) -> bool:
        return student_id in self.students


def put(state: ClassState, student: str, start: int = 0, **values: Any) -> set[str]:
    raw = json.dumps({"final": True, "values": {"answers": 10, "correct": 9, **values}}).encode()
    return set(state.apply(f"engagement.{student}.{start}", "engagement", student, None, start, raw))


def classroom(students: int, **kwargs: Any) -> ClassState:
    state = ClassState(**kwargs)
    for number in range(students):
        put(state, f"s{number:05d}")
    return state


def ids(patches: list[dict[str, str]]) -> list[str]:
    return [patch["id"] for patch in patches]


def test_a_page_shows_its_rows_and_the_totals_of_the_class() -> None:
    view = OverviewView(classroom(5), EVERY_STUDENT, after="s00001", rows=2)
    snapshot = view.snapshot()
    assert ids(snapshot) == ["row-s00002", "row-s00003", "pager", "summary"]
    assert 'data-students="5"' in snapshot[3]["html"]
    assert "Students 3-4 of 5" in snapshot[2]["html"]
    assert 'href="/dashboard?after=s00003"' in snapshot[2]["html"]  # next
    assert 'href="/dashboard"' in snapshot[2]["html"]  # previous: the first page


def test_a_change_off_the_page_sends_the_totals_only_and_one_on_it_its_row() -> None:
    state = classroom(5)
    view = OverviewView(state, EVERY_STUDENT, rows=2)
    view.snapshot()
    assert ids(view.patches(put(state, "s00004", 60, correct=0))) == ["pager", "summary"]
    patches = view.patches(put(state, "s00001", 60, correct=0))
    assert ids(patches) == ["row-s00001", "pager", "summary"]
    assert 'class="struggling"' in patches[0]["html"] and 'data-struggling="2"' in patches[2]["html"]


def test_a_student_new_to_the_page_pushes_its_last_row_off() -> None:
    state = classroom(3)
    view = OverviewView(state, EVERY_STUDENT, rows=2)
    view.snapshot()
    patches = view.patches(put(state, "a-first"))
    assert ids(patches) == ["row-s00001", "row-a-first", "pager", "summary"]
    assert patches[0]["html"] == ""  # removed
    assert patches[1]["parent"] == "students"


def test_a_forgotten_student_leaves_the_page_and_the_next_one_enters() -> None:
    state = classroom(3, limit=3)
    view = OverviewView(state, EVERY_STUDENT, rows=2)
    view.snapshot()
    patches = view.patches(put(state, "s9"))  # s00000, the quietest, is forgotten
    assert ids(patches) == ["row-s00000", "row-s00002", "pager", "summary"]
    assert patches[0]["html"] == ""


def test_a_reader_of_some_students_sees_those_only() -> None:
    state = classroom(4)
    view = OverviewView(state, Only("s00001", "s00003", "s00009"), rows=10)
    snapshot = view.snapshot()
    assert ids(snapshot) == ["row-s00001", "row-s00003", "pager", "summary"]
    assert 'data-students="2"' in snapshot[3]["html"]
    assert view.patches(put(state, "s00002", 60)) == []
    patches = view.patches(put(state, "s00009", correct=0))
    assert ids(patches) == ["row-s00009", "pager", "summary"]
    assert 'data-students="3" data-struggling="1"' in patches[2]["html"]
    assert len(state.roster) == 5  # the page's roster is its own


def test_what_an_update_sends_does_not_grow_with_the_class() -> None:
    sent = {}
    for students in (200, 20_000):
        state = classroom(students)
        for number in range(0, students, 7):  # a seventh of the class struggling
            put(state, f"s{number:05d}", 60, correct=0)
        view = OverviewView(state, EVERY_STUDENT)
        assert len(view.snapshot()) == min(students, 100) + 2  # the snapshot is a page
        patches = view.patches(put(state, "s00050", 120, correct=0))
        sent[students] = sum(len(patch["html"]) for patch in patches)
    assert sent[20_000] <= 1.05 * sent[200], sent
