"""The event contract's numbers: finite, and within 2**53 wherever they are in ``data``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contract.events import (
    MAX_DATA_NUMBER,
    FieldError,
    InvalidEvents,
    validate_batch,
    validate_event,
)

from .samples import (
    AMOUNT,
    BOOLEAN,
    COUNT,
    GAME,
    HEARTBEAT,
    INTERACTION,
    NOW,
    NUMBER,
    changed,
    problems,
)


@pytest.mark.parametrize("number", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize(
    ("type_", "name", "key", "rule"),
    [("game", "level_completed", "score", AMOUNT), ("engagement", "heartbeat", "seconds", HEARTBEAT)],
)
def test_non_finite_numbers_are_refused_by_the_rule_of_their_key(
    number: float, type_: str, name: str, key: str, rule: str
) -> None:
    data = {"level": 1, "score": 1, "duration_ms": 1, "seconds": 1, key: number}
    assert problems(changed(GAME, type=type_, name=name, data=data)) == [(f"data.{key}", rule)]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param({"x": float("nan")}, [("data.x", NUMBER)], id="nan"),
        pytest.param({"x": {"y": [float("inf")]}}, [("data.x.y.0", NUMBER)], id="nested inf"),
        pytest.param({"x": -float("inf"), "y": [1, float("nan")]}, [("data.x", NUMBER), ("data.y.1", NUMBER)], id="two"),
    ],
)
def test_non_finite_numbers_from_python_are_refused_at_their_path(
    data: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    # Only a Python caller can hand over NaN (in JSON it is malformed) or an infinity.
    assert problems(changed(INTERACTION, data=data)) == expected


@pytest.mark.parametrize(("key", "rule"), [("x", NUMBER), ("score", AMOUNT)])
@pytest.mark.parametrize("text", ["1e400", "-1e400", "1" + "0" * 400, "-1" + "0" * 400])
def test_json_numbers_beyond_a_float_are_refused_at_their_path(key: str, rule: str, text: str) -> None:
    # Valid JSON syntax: the exponents parse to infinities, the digits to a 1,331-bit integer.
    body = json.dumps(changed(GAME, data={"level": 1, "score": 0, "duration_ms": 1, "x": 0}))
    assert problems(body.replace(f'"{key}": 0', f'"{key}": {text}').encode()) == [(f"data.{key}", rule)]


def bound_case(data: dict[str, Any], *paths: str, name: str = "achievement_unlocked") -> Any:
    """A table row: a game event ``name`` with ``data`` is refused at ``paths`` by the general
    bound (no paths: valid). achievement_unlocked has no data rules, so any key is free."""
    document = changed(GAME, name=name, data=data)
    return pytest.param(document, [(path, NUMBER) for path in paths], id=f"{name}:{json.dumps(data)[:60]}")


BOUND_CASES = [
    # At the bound and one past it, on both sides; a free key may be negative.
    bound_case({"x": 2**53}),
    bound_case({"x": -(2**53)}),
    bound_case({"x": 2.0**53, "y": -(2.0**53)}),
    bound_case({"x": 2**53 + 1}, "data.x"),
    bound_case({"x": -(2**53) - 1}, "data.x"),
    bound_case({"x": 2.0**53 + 2}, "data.x"),  # the next double above 2**53
    bound_case({"x": 1e308}, "data.x"),
    bound_case({"x": -1e308}, "data.x"),
    bound_case({"x": 10**400}, "data.x"),
    bound_case({"x": 0.1, "y": -5e-324, "z": 0, "w": -0.0}),
    bound_case({"x": True, "y": "1" + "0" * 400}),  # booleans and strings are not numbers
    # "score" has a rule only where the event names one; elsewhere the general bound holds.
    bound_case({"score": -(2**53)}),
    bound_case({"score": -(2**53) - 1}, "data.score"),
    # Inside objects and arrays: keys as they are, array positions counted from 0.
    bound_case({"a": {"b": {"c": 2**60}}}, "data.a.b.c"),
    bound_case({"items": [1, 2, 3, 2**60]}, "data.items.3"),
    bound_case({"items": [{"score": 5}, {"score": 1e300}]}, "data.items.1.score"),
    bound_case({"a": [[1, [-(2**54)]]]}, "data.a.0.1.0"),
    bound_case({"a.b": 2**54}, "data.a.b"),  # a dot in a key is not escaped
    # Every number out of range is reported, in document order.
    bound_case({"a": 2**54, "b": [0, 2**54], "c": {"d": -(2**54), "e": 1}}, "data.a", "data.b.1", "data.c.d"),
    # A key with a rule of its own is judged once, by that rule; its namesakes deeper down are free keys.
    bound_case(
        {"level": 1, "score": 1, "duration_ms": 1, "extra": {"score": 2**54, "level": [2**54]}},
        "data.extra.score",
        "data.extra.level.0",
        name="level_completed",
    ),
]


@pytest.mark.parametrize(("document", "expected"), BOUND_CASES)
def test_every_number_in_data_is_within_2_53(document: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert MAX_DATA_NUMBER == 2**53 == 9007199254740992
    assert problems(document) == expected
    assert problems(json.dumps(document).encode()) == expected


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param(changed(GAME, name="level_started", data={"level": [2**54]}), [("data.level", COUNT)], id="level"),
        pytest.param(changed(INTERACTION, data={"correct": 2**54}), [("data.correct", BOOLEAN)], id="correct"),
        pytest.param(
            changed(GAME, type="engagement", name="heartbeat", data={"seconds": {"x": 1e300}}),
            [("data.seconds", HEARTBEAT)],
            id="seconds",
        ),
    ],
)
def test_a_ruled_key_out_of_range_is_reported_once_by_its_rule(
    document: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    assert problems(document) == expected


def test_numbers_at_the_bound_round_trip_exactly() -> None:
    document = changed(GAME, data={"level": 2**53, "score": 2**53, "duration_ms": 2**53, "x": [-(2**53), 2.0**53]})
    event = validate_event(json.dumps(document).encode(), now=NOW)
    assert event.data == document["data"]
    assert validate_event(event.to_json_bytes(), now=NOW) == event


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Digits a double does not keep are rounded away first, as every JSON reader of doubles
        # does: 2**53 + 1 written as a fraction is read as 2**53, the integer is kept exact.
        ("9007199254740993.0", []),
        ("9007199254740993", [("data.x", NUMBER)]),
        ("9007199254740993.5", [("data.x", NUMBER)]),  # the nearest double is 2**53 + 2
        ("-9007199254740993", [("data.x", NUMBER)]),
        ("9.007199254740992e15", []),
        ("1e16", [("data.x", NUMBER)]),
    ],
)
def test_a_json_number_is_judged_as_it_is_read(text: str, expected: list[tuple[str, str]]) -> None:
    body = json.dumps(changed(INTERACTION, data={"x": 0})).replace('"x": 0', f'"x": {text}')
    assert problems(body.encode()) == expected


def test_out_of_range_numbers_in_raw_json_are_refused_in_every_event_of_a_batch() -> None:
    # 10**400 and its neighbours as JSON text, the way an HTTP body arrives: every problem of
    # every event in one answer, and no event of the batch returned.
    huge = "1" + "0" * 400
    good = json.dumps(GAME)
    score = json.dumps(changed(GAME, event_id="ev-3")).replace('"score": 120', f'"score": {huge}')
    nested = json.dumps(changed(INTERACTION, data={"a": [0, 0], "b": 0})).replace(
        '"a": [0, 0], "b": 0', f'"a": [0, -{huge}], "b": 1e400'
    )
    body = f'{{"events": [{good}, {score}, {nested}]}}'.encode()
    with pytest.raises(InvalidEvents) as raised:
        validate_batch(body, now=NOW)
    assert raised.value.errors == [
        FieldError(1, "data.score", AMOUNT),
        FieldError(2, "data.a.1", NUMBER),
        FieldError(2, "data.b", NUMBER),
    ]
