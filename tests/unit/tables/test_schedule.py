"""The close schedule: earliest end first, with grown and dropped windows handled lazily."""

from __future__ import annotations

from tables.schedule import CloseSchedule, OpenWindow


def window(name: str, end_us: int) -> OpenWindow:
    return OpenWindow((name,), 0, end_us, 1, {}, stored=False)


def test_pops_due_windows_in_end_order() -> None:
    schedule = CloseSchedule()
    a, b, c = window("a", 30), window("b", 10), window("c", 20)
    for w in (a, b, c):
        schedule.add(w)
    assert schedule.earliest() is b
    assert schedule.pop_until(20) == [b, c]
    assert schedule.pop_until(29) == []
    assert schedule.earliest() is a
    assert schedule.pop_until(30) == [a]
    assert schedule.earliest() is None


def test_equal_ends_come_out_in_filing_order() -> None:
    schedule = CloseSchedule()
    windows = [window(name, 10) for name in "xyz"]
    for w in windows:
        schedule.add(w)
    assert schedule.pop_until(10) == windows


def test_a_grown_window_is_refiled_under_its_new_end() -> None:
    schedule = CloseSchedule()
    grown, other = window("grown", 10), window("other", 15)
    schedule.add(grown)
    schedule.add(other)
    grown.end_us = 40
    assert schedule.earliest() is other
    assert schedule.pop_until(39) == [other]
    assert schedule.pop_until(40) == [grown]


def test_dead_windows_are_skipped() -> None:
    schedule = CloseSchedule()
    dead, alive = window("dead", 5), window("alive", 8)
    schedule.add(dead)
    schedule.add(alive)
    dead.alive = False
    assert schedule.earliest() is alive
    assert schedule.pop_until(100) == [alive]
