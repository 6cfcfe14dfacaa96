"""The dashboard's pages: the classroom overview, a page per student, and the fragments that
live updates swap in (a table row, the summary, a student's panels).

The markup is in ``templates/`` (``overview/``, ``student/``, and ``page.html`` around both);
this module decides what goes into it. Every value is escaped on its way in by
:func:`~app.dashboard.markup.render`, ids included (they are validated upstream, but this module
does not rely on it). Numbers are shown rounded and also carried exactly in ``data-value`` (the
KV value's JSON), with ``data-key`` naming the KV key they come from, so what the page shows can
be checked against the bucket. No inline script or style: the page's Content-Security-Policy
allows only the project's own files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import quote

from app.dashboard.charts import bar_chart, clock_time
from app.dashboard.markup import Markup, join, render
from app.dashboard.state import (
    HISTORY,
    MIN_ANSWERS,
    MIN_FINISHED_LEVELS,
    STRUGGLE_BELOW,
    STRUGGLE_WINDOWS,
    Series,
    StudentState,
    Window,
)

__all__ = [
    "PAGER_ID",
    "PAGE_ROWS",
    "ROWS_ID",
    "SUMMARY_ID",
    "SUMMARY_NAMES",
    "login_page",
    "message_page",
    "overview_href",
    "overview_page",
    "page",
    "page_links",
    "pager",
    "panels_id",
    "row_id",
    "student_href",
    "student_page",
    "student_panels",
    "student_row",
    "summary",
]

ROWS_ID: Final = "students"
SUMMARY_ID: Final = "summary"
PAGER_ID: Final = "pager"
STATIC: Final = "/dashboard/static"
#: students on one page of the overview: what a page renders, and what its stream keeps current
PAGE_ROWS: Final = 100
#: struggling students the summary names; the others are counted ("and 12 more")
SUMMARY_NAMES: Final = 20

RULE: Final = (
    f"Struggling: over the last {STRUGGLE_WINDOWS} windows with results, answer accuracy below "
    f"{STRUGGLE_BELOW:.0%} (at least {MIN_ANSWERS} answers) or fewer than {STRUGGLE_BELOW:.0%} of "
    f"levels completed (at least {MIN_FINISHED_LEVELS} levels completed or failed)."
)


def row_id(student_id: str) -> str:
    return f"row-{student_id}"


def panels_id(student_id: str) -> str:
    return f"panels-{student_id}"


def student_href(student_id: str) -> str:
    """The href of a student's page."""
    return f"/dashboard/students/{quote(student_id, safe='')}"


def overview_href(after: str | None, path: str = "/dashboard") -> str:
    """The overview's page of students after ``after`` (None: the first page); ``path`` is the
    page's, or its stream's."""
    return path if after is None else f"{path}?after={quote(after, safe='')}"


def page(title: str, stream: str, body: Markup) -> Markup:
    """A whole page around ``body``, following the event stream at ``stream`` (empty: none)."""
    return render("page.html", title=title, static=STATIC, stream=stream, body=body)


def message_page(title: str, message: str) -> Markup:
    """A page that says why there is nothing to show (an unknown metric, a bad parameter)."""
    return page(f"{title} - learning-streams", "", render("message.html", title=title, message=message))


def _state(struggling: bool) -> str:
    """The class of a struggling student's row and status (the style sheet marks them)."""
    return "struggling" if struggling else "ok"


def _cell(window: Window | None, field: str, text: str, *, ratio: bool = False) -> Markup:
    """A table cell showing ``text`` for ``window.values[field]``, with the exact value attached."""
    if window is None:
        return render("overview/no-cell.html")
    value = window.values.get(field)
    shown = "-" if value is None else (f"{value:.0%}" if ratio else text)
    return render("overview/cell.html", key=window.key, field=field, value=json.dumps(value), shown=shown)


def _number(window: Window | None, field: str) -> str:
    value = window.values.get(field) if window is not None else None
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.1f}"
    return "-" if value is None else str(value)


def _games(student: StudentState) -> Markup:
    chips = []
    for game_id, series in sorted(student.outcomes.items()):
        latest = series.latest
        if latest is None:
            continue
        wins, games = latest.values.get("wins"), latest.values.get("games")
        chips.append(render(
            "overview/game.html", key=latest.key, value=json.dumps([wins, games]), game_id=game_id,
            when=clock_time(latest.start), wins=wins, games=games,
        ))  # fmt: skip
    return join(chips or ["-"])


def _student_link(student_id: str) -> Markup:
    return render("overview/student-link.html", href=student_href(student_id), student_id=student_id)


def student_row(student: StudentState) -> Markup:
    """One overview row: the student's latest engagement, progression and outcomes windows."""
    engagement, progression = student.engagement.latest, student.progression.latest
    struggle = student.struggle()
    last = student.last_start
    cells = [
        _cell(engagement, "answers", _number(engagement, "answers")),
        _cell(engagement, "accuracy", "", ratio=True),
        _cell(engagement, "active_seconds", _number(engagement, "active_seconds")),
        _cell(engagement, "sessions", _number(engagement, "sessions")),
        _cell(progression, "levels_completed", _number(progression, "levels_completed")),
        _cell(progression, "levels_failed", _number(progression, "levels_failed")),
        _cell(progression, "completion_rate", "", ratio=True),
        _cell(progression, "max_level", _number(progression, "max_level")),
        _cell(progression, "score", _number(progression, "score")),
    ]
    return render(
        "overview/row.html",
        id=row_id(student.student_id),
        student_id=student.student_id,
        state=_state(bool(struggle)),
        href=student_href(student.student_id),
        when=clock_time(last) if last is not None else "-",
        cells=join(cells),
        games=_games(student),
        status="struggling: " + "; ".join(struggle.reasons) if struggle else "on track",
    )


def summary(students: int, struggling: int, names: Sequence[str]) -> Markup:
    """The line above the table: of ``students`` (those the reader may see), ``struggling`` are,
    the first of them ``names`` (at most :data:`SUMMARY_NAMES`: the others are counted)."""
    if students:
        links = join((_student_link(name) for name in names), ", ")
        more = struggling - len(names)
        text = join([
            f"{struggling} of {students} students struggling",
            *([": ", links] if names else []),
            *([f" and {more} more"] if names and more > 0 else []),
        ])  # fmt: skip
    else:
        text = join(["No windows have closed yet: results appear here as each window closes."])
    return render("overview/summary.html", id=SUMMARY_ID, students=students, struggling=struggling, text=text)


def pager(*, first: int, shown: int, total: int, previous: str | None, following: str | None) -> Markup:
    """Where a page of the overview is in the class: students ``first`` to ``first + shown - 1``
    of ``total``, with links to the previous and the next page (hrefs; None: there is none)."""
    where = f"Students {first}-{first + shown - 1} of {total}, by id" if shown else f"{total} students"
    return render("overview/pager.html", id=PAGER_ID, where=where, links=page_links(previous, following))


def page_links(previous: str | None, following: str | None) -> Markup:
    """A pager's links to the previous and the next page (hrefs; None: there is none)."""
    links = [
        render("overview/page-link.html", href=href, text=text, rel=rel)
        for href, text, rel in ((previous, "previous page", "prev"), (following, "next page", "next"))
        if href is not None
    ]
    return join(links, " ")


def overview_page(
    rows: Sequence[StudentState], *, summary: Markup, pager: Markup, after: str | None,
    window_seconds: int, grace_seconds: int,
) -> Markup:
    """One page of the classroom: a row for each of ``rows`` (at most :data:`PAGE_ROWS` of the
    students the reader may see, by id, after ``after``), with the class's ``summary``."""
    body = render(
        "overview/body.html",
        summary=summary,
        pager=pager,
        rule=RULE,
        window_seconds=window_seconds,
        grace_seconds=grace_seconds,
        rows_id=ROWS_ID,
        after=after or "",
        rows=join(student_row(student) for student in rows),
    )
    return page("Classroom - learning-streams", overview_href(after, "/dashboard/stream"), body)
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


def _charts(heading: str, charts: Sequence[Markup]) -> Markup:
    return render("student/metric.html", heading=heading, charts=join(charts))


def student_panels(student: StudentState, *, window_seconds: int) -> Markup:
    """The part of a student's page that live updates replace: status and every chart."""
    struggle = student.struggle()
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
    return render(
        "student/panels.html",
        id=panels_id(student.student_id),
        state=_state(bool(struggle)),
        status="Struggling: " + "; ".join(struggle.reasons) if struggle else "On track.",
        sections=join(sections),
    )


def login_page(next_path: str, message: str) -> Markup:
    """The form that takes a read token once (it is then kept in a cookie) and goes on to
    ``next_path``."""
    return render("login.html", static=STATIC, next=next_path, message=message)


def student_page(student: StudentState, *, window_seconds: int, metric_panels: Markup = Markup("")) -> Markup:
    """A student's page: the charts of the refined metrics, then ``metric_panels``, the generic
    panels of the others (:mod:`app.dashboard.generic`)."""
    body = render(
        "student/body.html",
        student_id=student.student_id,
        window_seconds=window_seconds,
        panels=student_panels(student, window_seconds=window_seconds),
        metric_panels=metric_panels,
    )
    stream = f"/dashboard/stream?student={quote(student.student_id, safe='')}"
    return page(f"{student.student_id} - learning-streams", stream, body)
