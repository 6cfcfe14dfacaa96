"""The dashboard's HTML: the classroom overview, a page per student, and the fragments that
live updates swap in (a table row, the summary, a student's panels).

Every value is escaped on its way into the markup, ids included (they are validated upstream,
but this module does not rely on it). Numbers are shown rounded and also carried exactly in
``data-value`` (the KV value's JSON), with ``data-key`` naming the KV key they come from, so
what the page shows can be checked against the bucket. No inline script or style: the page's
Content-Security-Policy allows only the project's own files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from typing import Any, Final
from urllib.parse import quote

from app.dashboard.charts import bar_chart, clock_time
from app.dashboard.state import (
    HISTORY,
    MIN_ANSWERS,
    MIN_FINISHED_LEVELS,
    STRUGGLE_BELOW,
    STRUGGLE_WINDOWS,
    ClassState,
    Series,
    StudentState,
    Window,
)

__all__ = [
    "ROWS_ID",
    "SUMMARY_ID",
    "overview_page",
    "panels_id",
    "row_id",
    "student_page",
    "student_panels",
    "student_row",
    "summary",
]

ROWS_ID: Final = "students"
SUMMARY_ID: Final = "summary"
STATIC: Final = "/dashboard/static"

RULE: Final = (
    f"Struggling: over the last {STRUGGLE_WINDOWS} windows with results, answer accuracy below "
    f"{STRUGGLE_BELOW:.0%} (at least {MIN_ANSWERS} answers) or fewer than {STRUGGLE_BELOW:.0%} of "
    f"levels completed (at least {MIN_FINISHED_LEVELS} levels completed or failed)."
)


def row_id(student_id: str) -> str:
    return f"row-{student_id}"


def panels_id(student_id: str) -> str:
    return f"panels-{student_id}"


def _student_href(student_id: str) -> str:
    return f"/dashboard/students/{quote(student_id, safe='')}"


def _page(title: str, stream: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>"
        f'<link rel="stylesheet" href="{STATIC}/dashboard.css">'
        f'<script src="{STATIC}/dashboard.js" defer></script>'
        f'</head><body data-stream="{escape(stream)}">'
        '<header><a class="home" href="/dashboard">learning-streams</a>'
        '<span id="live" class="live" data-state="connecting">connecting</span></header>'
        f"<main>{body}</main></body></html>"
    )


def _cell(window: Window | None, field: str, text: str, *, ratio: bool = False) -> str:
    """A table cell showing ``text`` for ``window.values[field]``, with the exact value attached."""
    if window is None:
        return '<td class="num none">-</td>'
    value = window.values.get(field)
    shown = "-" if value is None else (f"{value:.0%}" if ratio else text)
    return (
        f'<td class="num" data-key="{escape(window.key)}" data-field="{escape(field)}" '
        f'data-value="{escape(json.dumps(value))}">{escape(shown)}</td>'
    )


def _number(window: Window | None, field: str) -> str:
    value = window.values.get(field) if window is not None else None
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.1f}"
    return "-" if value is None else str(value)


def _games(student: StudentState) -> str:
    chips = []
    for game_id, series in sorted(student.outcomes.items()):
        latest = series.latest
        if latest is None:
            continue
        wins, games = latest.values.get("wins"), latest.values.get("games")
        chips.append(
            f'<span class="game" data-key="{escape(latest.key)}" data-field="wins/games" '
            f'data-value="{escape(json.dumps([wins, games]))}" title="{escape(game_id)}, window at '
            f'{escape(clock_time(latest.start))} UTC">{escape(game_id)} {escape(str(wins))}/{escape(str(games))}</span>'
        )
    return f'<td class="games">{"".join(chips) or "-"}</td>'


def student_row(student: StudentState) -> str:
    """One overview row: the student's latest engagement, progression and outcomes windows."""
    engagement, progression = student.engagement.latest, student.progression.latest
    struggle = student.struggle()
    last = student.last_start
    status = (
        '<td class="status">struggling: ' + escape("; ".join(struggle.reasons)) + "</td>"
        if struggle
        else '<td class="status ok">on track</td>'
    )
    marked = ' class="struggling"' if struggle else ""
    return (
        f'<tr id="{escape(row_id(student.student_id))}" data-student="{escape(student.student_id)}"{marked}>'
        f'<th scope="row"><a href="{escape(_student_href(student.student_id))}">{escape(student.student_id)}</a></th>'
        f'<td class="when">{escape(clock_time(last)) if last is not None else "-"}</td>'
        + _cell(engagement, "answers", _number(engagement, "answers"))
        + _cell(engagement, "accuracy", "", ratio=True)
        + _cell(engagement, "active_seconds", _number(engagement, "active_seconds"))
        + _cell(engagement, "sessions", _number(engagement, "sessions"))
        + _cell(progression, "levels_completed", _number(progression, "levels_completed"))
        + _cell(progression, "levels_failed", _number(progression, "levels_failed"))
        + _cell(progression, "completion_rate", "", ratio=True)
        + _cell(progression, "max_level", _number(progression, "max_level"))
        + _cell(progression, "score", _number(progression, "score"))
        + _games(student)
        + status
        + "</tr>"
    )


def summary(state: ClassState) -> str:
    students = state.students
    struggling = state.struggling()
    names = ", ".join(
        f'<a href="{escape(_student_href(s.student_id))}">{escape(s.student_id)}</a>' for s in struggling
    )
    text = (
        f"{len(struggling)} of {len(students)} students struggling" + (f": {names}" if names else "")
        if students
        else "No windows have closed yet: results appear here as each window closes."
    )
    return f'<p id="{SUMMARY_ID}" class="summary" data-students="{len(students)}" data-struggling="{len(struggling)}">{text}</p>'


_HEAD: Final = (
    '<thead><tr><th rowspan="2">Student</th><th rowspan="2">Last window (UTC)</th>'
    '<th colspan="4">Engagement (latest window)</th><th colspan="5">Progression (latest window)</th>'
    '<th rowspan="2">Games won / played (latest window per game)</th><th rowspan="2">Status</th></tr>'
    "<tr><th>Answers</th><th>Accuracy</th><th>Active s</th><th>Sessions</th>"
    "<th>Levels done</th><th>Failed</th><th>Completion</th><th>Max level</th><th>Score</th></tr></thead>"
)


def overview_page(state: ClassState, *, window_seconds: int, grace_seconds: int) -> str:
    rows = "".join(student_row(student) for student in state.students)
    body = (
        "<h1>Classroom</h1>"
        + summary(state)
        + f'<p class="rule">{escape(RULE)}</p>'
        + f'<p class="note">Windows of {window_seconds} s; each closes {grace_seconds} s after its end '
        "and updates this page without a reload.</p>"
        + f'<table class="overview">{_HEAD}<tbody id="{ROWS_ID}">{rows}</tbody></table>'
    )
    return _page("Classroom - learning-streams", "/dashboard/stream", body)


def _slots(student: StudentState, window_seconds: int) -> list[int]:
    """The window starts the student's charts share: the last :data:`HISTORY` windows up to the
    student's newest one, idle ones included, so every chart has the same time axis."""
    last = student.last_start
    if last is None:
        return []
    return [last - back * window_seconds for back in range(HISTORY - 1, -1, -1)]


def _values(series: Series, field: str) -> dict[int, float | None]:
    """Window start -> the field's value, for every window of ``series`` (None: not a number)."""
    values: dict[int, float | None] = {}
    for window in series.recent():
        value: Any = window.values.get(field)
        values[window.start] = float(value) if isinstance(value, (int, float)) else None
    return values


def _charts(heading: str, charts: Sequence[str]) -> str:
    return f'<section class="metric"><h2>{escape(heading)}</h2><div class="charts">{"".join(charts)}</div></section>'


def student_panels(student: StudentState, *, window_seconds: int) -> str:
    """The part of a student's page that live updates replace: status and every chart."""
    struggle = student.struggle()
    status = (
        '<p class="status struggling">Struggling: ' + escape("; ".join(struggle.reasons)) + "</p>"
        if struggle
        else '<p class="status ok">On track.</p>'
    )
    slots = _slots(student, window_seconds)
    engagement, progression = student.engagement, student.progression
    sections = [
        _charts("Engagement", [
            bar_chart("engagement.accuracy", "Accuracy", slots, _values(engagement, "accuracy"), ratio=True),
            bar_chart("engagement.answers", "Answers", slots, _values(engagement, "answers")),
            bar_chart("engagement.active_seconds", "Active seconds", slots, _values(engagement, "active_seconds")),
        ]),
        _charts("Progression", [
            bar_chart("progression.completion_rate", "Level completion rate",
                      slots, _values(progression, "completion_rate"), ratio=True),
            bar_chart("progression.levels_completed", "Levels completed", slots, _values(progression, "levels_completed")),
            bar_chart("progression.score", "Score", slots, _values(progression, "score")),
        ]),
    ]  # fmt: skip
    for game_id, series in sorted(student.outcomes.items()):
        sections.append(_charts(f"Outcomes: {game_id}", [
            bar_chart(f"outcomes.{game_id}.win_rate", "Win rate", slots, _values(series, "win_rate"), ratio=True),
            bar_chart(f"outcomes.{game_id}.games", "Games finished", slots, _values(series, "games")),
        ]))  # fmt: skip
    return f'<div id="{escape(panels_id(student.student_id))}" class="panels">{status}{"".join(sections)}</div>'


def student_page(student: StudentState, *, window_seconds: int) -> str:
    body = (
        f"<h1>{escape(student.student_id)}</h1>"
        f'<p class="note">One bar per {window_seconds}-second window, newest on the right (times in UTC); '
        "new windows appear as they close.</p>"
        + student_panels(student, window_seconds=window_seconds)
    )
    return _page(f"{student.student_id} - learning-streams", f"/dashboard/stream?student={quote(student.student_id, safe='')}", body)
