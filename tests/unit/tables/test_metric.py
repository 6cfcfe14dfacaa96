"""Metric definitions: validated at definition time; keys and times read from events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from tables.aggregators import Aggregates, Count, Sum
from tables.errors import ConfigError, InvalidEventError
from tables.fields import MISSING
from tables.metric import MetricDefinition
from tables.windows import Session, Tumbling


class NoMerge:
    def initialize(self) -> int:
        return 0

    def agg(self, state: int, event: Any, ts: float) -> int:
        return state + 1

    def result(self, state: int) -> int:
        return state


def define(**overrides: Any) -> MetricDefinition:
    arguments: dict[str, Any] = {
        "name": "answers",
        "key_fields": ("student_id", "game_id"),
        "time_field": "ts",
        "window": Tumbling(60),
        "aggregates": Aggregates({"n": Count()}),
    }
    arguments.update(overrides)
    return MetricDefinition(**arguments)


@pytest.mark.parametrize(
    ("overrides", "field", "problem"),
    [
        ({"name": ""}, "name", "letters, digits"),
        ({"name": "has.dot"}, "name", "letters, digits"),
        ({"name": "has space"}, "name", "letters, digits"),
        ({"key_fields": "student_id"}, "key_fields", "tuple of field names"),
        ({"key_fields": ()}, "key_fields", "at least one"),
        ({"key_fields": ("a", "")}, "key_fields", "at least one field, each a non-empty string"),
        ({"key_fields": ("a", "a")}, "key_fields", "unique"),
        ({"key_fields": 5}, "key_fields", "tuple of field names"),
        ({"key_fields": ("a..b",)}, "key_fields", "dotted path"),
        ({"time_field": lambda e: e["ts"]}, "time_field", "name (dotted path)"),
        ({"time_field": "ts..x"}, "time_field", "dotted path"),
        ({"window": 60}, "window", "Tumbling, Hopping or Session"),
        ({"aggregates": {"n": Count()}}, "aggregates", "Aggregates"),
        ({"grace": -1}, "grace", ">= 0"),
        ({"grace": "5s"}, "grace", "timedelta or a number"),
        ({"key": "student_id"}, "key", "callable"),
        ({"where": True}, "where", "callable"),
        (
            {"window": Session(60), "aggregates": Aggregates({"n": Count(), "custom": NoMerge()})},
            "aggregates",
            "merge",
        ),
    ],
)
def test_mistakes_are_config_errors_at_definition_time(
    overrides: dict[str, Any], field: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        define(**overrides)
    assert caught.value.field == field
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"MetricDefinition '{field}'")


def test_session_error_lists_the_aggregators_without_merge() -> None:
    with pytest.raises(ConfigError) as caught:
        define(window=Session(60), aggregates=Aggregates({"n": Count(), "custom": NoMerge()}))
    assert caught.value.value == ["custom"]


def test_normalises_grace_and_key_fields() -> None:
    definition = define(grace=2.5, key_fields=["student_id", "game_id"])
    assert definition.grace == timedelta(seconds=2.5)
    assert definition.grace_us == 2_500_000
    assert definition.key_fields == ("student_id", "game_id")
    assert define(grace=timedelta(minutes=1)).grace == define(grace=60).grace


def test_a_user_aggregator_without_merge_is_fine_for_fixed_windows() -> None:
    assert define(aggregates=Aggregates({"custom": NoMerge()})).aggregates.names == ("custom",)


@dataclass
class Event:
    student_id: Any
    game_id: Any
    ts: Any


@pytest.mark.parametrize(
    ("event", "key"),
    [
        ({"student_id": "s1", "game_id": "g1", "ts": 0}, ("s1", "g1")),
        ({"student_id": 42, "game_id": "g1", "ts": 0}, ("42", "g1")),
        (Event(student_id="s1", game_id=7, ts=0), ("s1", "7")),
    ],
)
def test_default_key_reads_the_key_fields(event: Any, key: tuple[str, ...]) -> None:
    assert define().read_key(event) == key


@pytest.mark.parametrize(
    ("event", "field", "problem"),
    [
        ({"game_id": "g1"}, "student_id", "the event has no such field"),
        ({"student_id": "", "game_id": "g1"}, "student_id", "non-empty string or an int"),
        ({"student_id": "s1", "game_id": None}, "game_id", "non-empty string or an int"),
        ({"student_id": True, "game_id": "g1"}, "student_id", "non-empty string or an int"),
        ({"student_id": 1.5, "game_id": "g1"}, "student_id", "non-empty string or an int"),
    ],
)
def test_default_key_refuses_unusable_parts(event: Any, field: str, problem: str) -> None:
    with pytest.raises(InvalidEventError) as caught:
        define().read_key(event)
    assert caught.value.field == field
    assert problem in caught.value.problem


def test_key_fields_may_be_dotted_paths() -> None:
    definition = define(key_fields=("student.id",))
    assert definition.read_key({"student": {"id": "s9"}}) == ("s9",)
    with pytest.raises(InvalidEventError) as caught:
        definition.read_key({"student": {}})
    assert (caught.value.field, caught.value.value) == ("student.id", MISSING)


def test_custom_key_must_return_one_string_per_key_field() -> None:
    definition = define(key=lambda e: (e["student"].lower(), e["game"]))
    assert definition.read_key({"student": "S1", "game": "g"}) == ("s1", "g")
    with pytest.raises(InvalidEventError) as caught:
        definition.read_key({"student": "S1", "game": 7})
    assert caught.value.field == "key"
    assert caught.value.value == ("s1", 7)
    assert "tuple of 2 non-empty strings" in caught.value.problem


def test_custom_key_exceptions_pass_through() -> None:
    definition = define(key=lambda e: (e["student"], e["game"]))
    with pytest.raises(KeyError):
        definition.read_key({})


def test_read_time_us_names_the_time_field() -> None:
    definition = define(time_field="meta.at")
    assert definition.read_time_us({"meta": {"at": "1970-01-01T00:01:00Z"}}) == 60_000_000
    with pytest.raises(InvalidEventError) as caught:
        definition.read_time_us({"meta": {"at": "noon"}})
    assert caught.value.field == "meta.at"


def test_definitions_are_frozen() -> None:
    definition = define(aggregates=Aggregates({"s": Sum("score")}))
    with pytest.raises(AttributeError):
        definition.name = "other"  # type: ignore[misc]
