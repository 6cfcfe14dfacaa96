"""The README's table of settings is the one the declarations in app/settings/ make: a setting is
written once, and the table follows it (``.venv/bin/python -m app.settings`` prints the table)."""

from __future__ import annotations

import re
from pathlib import Path

from app.settings import SETTINGS, markdown_table

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
_TABLE = re.compile(r"^<!-- settings table: .*? -->\n(.*?)\n<!-- end of settings table -->$", re.MULTILINE | re.DOTALL)


def test_the_readme_table_is_the_declared_one() -> None:
    (table,) = _TABLE.findall(README)
    assert table == markdown_table(), (
        "README.md's settings table is not the one app/settings/declarations.py declares: replace it, "
        "between its markers, with the output of `.venv/bin/python -m app.settings`"
    )


def test_the_table_has_a_row_per_setting() -> None:
    rows = [line for line in markdown_table().splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [s.name for s in SETTINGS]
