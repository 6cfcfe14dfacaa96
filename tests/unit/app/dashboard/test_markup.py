"""Filling in the dashboard's templates: text is escaped, rendered markup is not, and a template
gets exactly the values it names."""

from __future__ import annotations

import tomllib
from pathlib import Path
from string import Template

import pytest

from app.dashboard.markup import TEMPLATES_DIR, Markup, join, render

HOSTILE = "\"'><script>alert(1)</script>&"
ESCAPED = "&quot;&#x27;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&amp;"
TEMPLATES = sorted(path.relative_to(TEMPLATES_DIR).as_posix() for path in TEMPLATES_DIR.rglob("*.html"))


def test_text_is_escaped_and_markup_is_kept() -> None:
    link = render("overview/student-link.html", href=f"/x?{HOSTILE}", student_id=HOSTILE)
    assert isinstance(link, Markup)
    assert link == f'<a href="/x?{ESCAPED}">{ESCAPED}</a>'
    cell = render("student/metric.html", heading=HOSTILE, charts=link)
    assert f"<h2>{ESCAPED}</h2>" in cell and link in cell


def test_join_escapes_text_and_its_separator() -> None:
    assert join([Markup("<b>a</b>"), "<i>"], " & ") == "<b>a</b> &amp; &lt;i&gt;"
    assert join([]) == ""


def test_a_template_gets_exactly_the_values_it_names() -> None:
    with pytest.raises(ValueError, match=r"names \['student_id'\], not nothing else"):
        render("overview/student-link.html", href="/")
    with pytest.raises(ValueError, match=r"not \['colour'\]"):
        render("overview/student-link.html", href="/", student_id="a", colour="red")


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_template_can_be_filled_in(name: str) -> None:
    text = (TEMPLATES_DIR / name).read_text(encoding="utf-8")
    assert text.endswith("\n") and not text.endswith("\n\n"), name
    names = Template(text).get_identifiers()
    # The file's last newline is not part of the fragment: fragments are put side by side.
    assert not render(name, **dict.fromkeys(names, "x")).endswith("\n")


def test_the_templates_are_installed_with_the_package() -> None:
    pyproject = tomllib.loads((Path(__file__).resolve().parents[4] / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["app.dashboard"]
    package = TEMPLATES_DIR.parent
    installed = {path for pattern in patterns for path in package.glob(pattern)}
    assert {TEMPLATES_DIR / name for name in TEMPLATES} <= installed
