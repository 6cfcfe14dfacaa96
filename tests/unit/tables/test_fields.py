"""Reading values out of dict and object events by dotted path or callable."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from tables.errors import ConfigError
from tables.fields import MISSING, field_label, field_reader


@dataclass
class Answer:
    score: int | None
    data: dict[str, Any]


@pytest.mark.parametrize(
    ("path", "event", "expected"),
    [
        ("score", {"score": 3}, 3),
        ("score", {"score": None}, None),
        ("score", {}, MISSING),
        ("data.score", {"data": {"score": 7}}, 7),
        ("data.score", {"data": {}}, MISSING),
        ("data.score", {"data": None}, MISSING),
        ("data.score", {}, MISSING),
        ("a.b.c", {"a": {"b": {"c": "deep"}}}, "deep"),
        ("student-id", {"student-id": "s1"}, "s1"),
        ("score", Answer(score=4, data={}), 4),
        ("data.score", Answer(score=None, data={"score": 9}), 9),
        ("data.missing", Answer(score=None, data={}), MISSING),
        ("inner.value", SimpleNamespace(inner=SimpleNamespace(value=1.5)), 1.5),
        ("nope", SimpleNamespace(), MISSING),
    ],
)
def test_dotted_paths_work_on_dicts_and_attributes(path: str, event: Any, expected: Any) -> None:
    assert field_reader(path, owner="Sum")(event) == expected


def test_a_callable_is_its_own_reader() -> None:
    def double(event: Any) -> int:
        return int(event["x"]) * 2

    assert field_reader(double, owner="Sum") is double
    assert field_label(double) == "double"
    assert field_label("data.score") == "data.score"


@pytest.mark.parametrize("path", ["", ".a", "a.", "a..b", 5, None])
def test_bad_paths_are_config_errors(path: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        field_reader(path, owner="Sum")
    assert caught.value.field == "field"
    assert "dotted path" in caught.value.problem
    assert str(caught.value).startswith("Sum 'field'")


def test_missing_has_a_readable_repr() -> None:
    assert repr(MISSING) == "<missing>"
