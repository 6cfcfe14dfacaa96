"""The dashboard's HTML: values shown with their KV key and exact value attached, the
struggling students marked, the rule stated, charts on a student's page, everything escaped."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any

from app.access import EVERY_STUDENT, Reader
from app.dashboard.markup import Markup
from app.dashboard.overview import OverviewView
from app.dashboard.pages import login_page, student_page, student_panels, student_row, summary
from app.dashboard.state import ClassState

T0 = 1_714_557_600


class Elements(HTMLParser):
    """Every start tag with its attributes; refuses markup the parser finds broken."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def with_attr(self, name: str) -> list[dict[str, str | None]]:
        return [attrs for _, attrs in self.tags if name in attrs]


def result(metric: str, student: str, start: int, values: dict[str, Any], game: str | None = None) -> tuple:
    key = ".".join([metric, student, *([game] if game else []), str(start)])
    raw = json.dumps({"metric": metric, "final": True, "events": 3, "values": values}).encode()
    return key, metric, student, game, start, raw


ENGAGEMENT = {"interactions": 8, "answers": 8, "correct": 2, "accuracy": 0.25, "active_seconds": 42.5, "sessions": 1}
PROGRESSION = {"levels_started": 3, "levels_completed": 2, "levels_failed": 1, "max_level": 3, "score": 150,
               "completion_rate": 2 / 3}  # fmt: skip
OUTCOMES = {"games": 2, "wins": 1, "losses": 1, "abandons": 0, "win_rate": 0.5, "mean_score": 80.0, "mean_duration_ms": 1e4}


class Only:
    """A reader of some students only."""

    def __init__(self, *students: str) -> None:
        self.students = set(students)

    def may_read(self, student_id: str) -> bool:
        return student_id in self.students


def overview_page(state: ClassState, reader: Reader = EVERY_STUDENT) -> Markup:
    return OverviewView(state, reader).page(window_seconds=60, grace_seconds=10)


def classroom() -> ClassState:
    state = ClassState()
    state.apply(*result("engagement", "ada", T0, ENGAGEMENT))
    state.apply(*result("progression", "ada", T0, PROGRESSION))
    state.apply(*result("outcomes", "ada", T0 - 60, OUTCOMES, game="math-quest"))
    state.apply(*result("engagement", "ben", T0, {**ENGAGEMENT, "correct": 8, "accuracy": 1.0}))
    return state


def test_the_overview_carries_every_shown_value_with_its_key() -> None:
    page = Elements(overview_page(classroom()))
    cells = {(a["data-key"], a["data-field"]): json.loads(a["data-value"] or "") for a in page.with_attr("data-field")}
    for field in ("answers", "accuracy", "active_seconds", "sessions"):
        assert cells[(f"engagement.ada.{T0}", field)] == ENGAGEMENT[field]
    for field in ("levels_completed", "levels_failed", "completion_rate", "max_level", "score"):
        assert cells[(f"progression.ada.{T0}", field)] == PROGRESSION[field]
    assert cells[(f"outcomes.ada.math-quest.{T0 - 60}", "wins/games")] == [1, 2]
    rows = [a["id"] for t, a in page.tags if t == "tr" and a.get("id")]
    assert rows == ["row-ada", "row-ben"]


def test_struggling_students_stand_out_and_the_rule_is_on_the_page() -> None:
    html = overview_page(classroom())
    page = Elements(html)
    marked = [a["data-student"] for t, a in page.tags if t == "tr" and a.get("class") == "struggling"]
    assert marked == ["ada"]  # 2 of 8 answers right
    assert "accuracy 25% (2 of 8 answers)" in html
    assert "Struggling: over the last 10 windows with results, answer accuracy below 50%" in html
    assert 'data-students="2" data-struggling="1"' in html


def test_a_student_page_has_a_chart_per_metric_on_one_time_axis() -> None:
    state = classroom()
    ada = state.student("ada")
    assert ada is not None
    page = Elements(student_page(ada, window_seconds=60))
    charts = [a["data-chart"] for a in page.with_attr("data-chart")]
    assert charts == [
        "engagement.accuracy", "engagement.answers", "engagement.active_seconds",
        "progression.completion_rate", "progression.levels_completed", "progression.score",
        "outcomes.math-quest.win_rate", "outcomes.math-quest.games",
    ]  # fmt: skip
    windows = {a["data-window"] for a in page.with_attr("data-window")}
    assert windows == {str(T0), str(T0 - 60)}
    assert student_panels(ada, window_seconds=60).startswith('<div id="panels-ada"')


def test_nothing_shown_is_left_unescaped() -> None:
    hostile = '"><script>alert(1)</script>'
    state = ClassState()
    # The state takes what the bucket holds; the pages must not trust it.
    state.apply(f"engagement.{hostile}.0", "engagement", hostile, None, 0,
                json.dumps({"final": True, "values": {"answers": hostile, "accuracy": None}}).encode())
    state.apply(f"outcomes.{hostile}.{hostile}.0", "outcomes", hostile, hostile, 0,
                json.dumps({"final": True, "values": {"wins": hostile, "games": 1}}).encode())  # fmt: skip
    student = state.student(hostile)
    assert student is not None
    for html in (
        overview_page(state),
        student_row(student),
        student_page(student, window_seconds=60),
    ):
        assert "<script>" not in html
        Elements(html)


def test_pages_load_only_the_projects_own_files() -> None:
    html = overview_page(ClassState())
    sources = [a.get("src") or a.get("href") for _, a in Elements(html).tags if a.get("src") or a.get("href")]
    assert sources and all(str(s).startswith("/") for s in sources)
    assert "No windows have closed yet" in html


def test_the_overview_and_its_summary_show_the_students_given_only() -> None:
    html = overview_page(classroom(), Only("ben"))
    assert [a["id"] for t, a in Elements(html).tags if t == "tr" and a.get("id")] == ["row-ben"]
    assert 'data-students="1" data-struggling="0"' in html
    assert "ada" not in html


def test_the_summary_names_the_first_struggling_students_and_counts_the_rest() -> None:
    text = summary(130, 25, [f"s{i:02d}" for i in range(20)])
    assert "25 of 130 students struggling" in text and text.endswith("and 5 more</p>")
    assert text.count("<a href") == 20
    assert "more" not in summary(3, 2, ["a", "b"])


def test_the_sign_in_form_posts_the_token_and_comes_back_to_the_page() -> None:
    page = Elements(login_page('/dashboard/students/"><script>', "This dashboard needs a read token."))
    (form,) = [a for t, a in page.tags if t == "form"]
    assert (form["method"], form["action"]) == ("post", "/dashboard/login")
    fields = {a["name"]: a for t, a in page.tags if t == "input"}
    assert fields["next"]["value"] == '/dashboard/students/"><script>'  # escaped in, read back whole
    assert fields["token"]["type"] == "password"
    assert not [t for t, _ in page.tags if t == "script"]
