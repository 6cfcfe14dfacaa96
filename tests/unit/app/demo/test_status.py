"""The demo's status line and the dead-letter subjects it counts."""

from __future__ import annotations

import pytest

from app.demo.status import Counts, count_letters, parse_report, status_line


def test_late_and_invalid_are_counted_by_subject() -> None:
    subjects = {
        "deadletter.late.engagement": 4,
        "deadletter.late.progression": 1,
        "deadletter.invalid": 3,
        "deadletter.invalid.outcomes": 2,
        "deadletter.invalidated": 100,  # neither: a subject that merely starts alike
        "deadletter.other": 7,
    }
    assert count_letters(subjects) == (5, 5)
    assert count_letters({}) == (0, 0)


def test_counts_of_this_run_subtract_what_was_there() -> None:
    assert Counts(10, 3, 2) - Counts(4, 1, 2) == Counts(6, 2, 0)


@pytest.mark.parametrize(
    "line",
    ["simulate: 12 students", '{"simulator": [1]}', '{"simulator": ', '{"other": {}}', ""],
)
def test_lines_that_are_not_reports_are_ignored(line: str) -> None:
    assert parse_report(line) is None


def test_the_status_line_shows_rate_sent_windows_late_and_invalid() -> None:
    report = {"rate": 10.25, "sent": 100, "repeats": 2, "invalid": 1}
    assert status_line("12:00:05", report, Counts(36, 2, 1)) == (
        "12:00:05  events 10.2/s (103 sent)  windows closed 36  late 2  invalid 1"
    )
    assert status_line("12:00:05", None, None) == "12:00:05  events -  windows closed ?  late ?  invalid ?"
