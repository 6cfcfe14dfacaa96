"""The roster: ids in order, the struggling ones among them, pages of them, from tables of cases."""

from __future__ import annotations

import pytest

from app.dashboard.roster import Roster


def roster(*ids: str, struggling: tuple[str, ...] = ()) -> Roster:
    made = Roster()
    for student_id in ids:
        made.put(student_id, struggling=student_id in struggling)
    return made


def test_ids_are_kept_in_order_once_whatever_order_they_come_in() -> None:
    made = roster("c", "a", "b", "a", struggling=("c", "a"))
    assert made.ids == ["a", "b", "c"] and len(made) == 3 and "b" in made and "z" not in made
    assert (made.struggling, made.first_struggling(1)) == (2, ["a"])
    made.put("a", struggling=False)
    made.drop("c")
    made.drop("nobody")
    assert (made.ids, made.struggling) == (["a", "b"], 0)


@pytest.mark.parametrize(
    ("after", "size", "page", "position", "previous"),
    [
        (None, 2, ["a", "b"], 0, None),
        ("b", 2, ["c", "d"], 2, None),  # the previous page is the first
        ("d", 2, ["e"], 4, "b"),
        ("bb", 2, ["c", "d"], 2, None),  # an id between two: the page starts after it
        ("e", 2, [], 5, "c"),
    ],
)
def test_pages_of_ids(after: str | None, size: int, page: list[str], position: int, previous: str | None) -> None:
    made = roster("a", "b", "c", "d", "e")
    assert made.page(after, size) == page
    assert made.position(after) == position
    assert made.before(after, size) == previous


def test_a_filtered_roster_is_its_own() -> None:
    made = roster("a", "b", "c", struggling=("a", "c"))
    mine = made.filtered(lambda student_id: student_id != "a")
    assert (mine.ids, mine.struggling) == (["b", "c"], 1)
    mine.drop("c")
    assert made.ids == ["a", "b", "c"]
