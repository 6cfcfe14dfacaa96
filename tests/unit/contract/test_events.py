"""The event contract for one event: a table of cases per rule (fields, data, whole events)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from contract.events import (
    InvalidEvents,
    validate_event,
)

from .samples import (
    AMOUNT,
    BOOLEAN,
    COUNT,
    DROP,
    EVENT_ID,
    FREE_TEXT,
    GAME,
    HEARTBEAT,
    INTERACTION,
    JSON_ONLY,
    NAME,
    NOW,
    OCCURRED_AT,
    REQUIRED,
    SUBJECT_ID,
    TYPE,
    case,
    changed,
    problems,
)

FIELD_CASES = [
    # event_id: the idempotency key; "." and ":" are allowed here, unlike in the other ids.
    case("event_id", "a", None),
    case("event_id", "Az09_.:-", None),
    case("event_id", "x" * 128, None),
    case("event_id", "x" * 129, EVENT_ID),
    case("event_id", "", EVENT_ID),
    case("event_id", "ev 1", EVENT_ID),
    case("event_id", "ev*", EVENT_ID),
    case("event_id", "ev>", EVENT_ID),
    case("event_id", "ev/1", EVENT_ID),
    case("event_id", "évent", EVENT_ID),
    case("event_id", "ev-1\n", EVENT_ID),
    case("event_id", 1, EVENT_ID),
    case("event_id", None, EVENT_ID),
    case("event_id", DROP, REQUIRED),
    # student_id: a NATS subject token and KV key part downstream.
    case("student_id", "S_1-a", None),
    case("student_id", "s" * 64, None),
    case("student_id", "s" * 65, SUBJECT_ID),
    case("student_id", "", SUBJECT_ID),
    # (NATS metacharacters: see test_subject_token_ids_refuse_nats_metacharacters)
    case("student_id", "s\t1", SUBJECT_ID),
    case("student_id", "s:1", SUBJECT_ID),
    case("student_id", "élève", SUBJECT_ID),
    case("student_id", "s\u0663", SUBJECT_ID),  # ARABIC-INDIC DIGIT THREE
    case("student_id", "\uff53\uff11", SUBJECT_ID),  # fullwidth "s1"
    case("student_id", "s1\n", SUBJECT_ID),
    case("student_id", 42, SUBJECT_ID),
    case("student_id", DROP, REQUIRED),
    # type
    case("type", "engagement", None),
    case("type", "Interaction", TYPE),
    case("type", "quiz", TYPE),
    case("type", "", TYPE),
    case("type", 1, TYPE),
    case("type", DROP, REQUIRED),
    # name
    case("name", "a", None),
    case("name", "hint_opened_2", None),
    case("name", "n" * 64, None),
    case("name", "n" * 65, NAME),
    case("name", "", NAME),
    case("name", "Answer", NAME),
    case("name", "answer-submitted", NAME),
    case("name", "answer.submitted", NAME),
    case("name", "answer submitted", NAME),
    case("name", "réponse", NAME),
    case("name", ["answer"], NAME),
    case("name", DROP, REQUIRED),
    # game_id: required for games only, same characters as student_id.
    case("game_id", "G_1-a", None, base=GAME),
    case("game_id", "g" * 64, None, base=GAME),
    case("game_id", "g" * 65, SUBJECT_ID, base=GAME),
    case("game_id", "", SUBJECT_ID, base=GAME),
    case("game_id", "jeu-é", SUBJECT_ID, base=GAME),
    case("game_id", None, SUBJECT_ID, base=GAME),
    case("game_id", DROP, REQUIRED, base=GAME),
    case("game_id", "g-math", None),
    case("game_id", "g.math", SUBJECT_ID),
    case("game_id", None, SUBJECT_ID),
    # session_id and activity_id: free text, at most 128 characters.
    case("session_id", "", None),
    case("session_id", "séance ✓ 1.2 *>", None),
    case("session_id", "s" * 128, None),
    case("session_id", "é" * 128, None),
    case("session_id", "s" * 129, FREE_TEXT),
    case("session_id", None, FREE_TEXT),
    case("session_id", 7, FREE_TEXT),
    case("activity_id", "quiz-3", None),
    case("activity_id", "a" * 128, None),
    case("activity_id", "a" * 129, FREE_TEXT),
    case("activity_id", None, FREE_TEXT),
    case("activity_id", {"id": 1}, FREE_TEXT),
    # data: an object; the requirements per event are in DATA_CASES.
    case("data", {}, None),
    case("data", None, "must be a JSON object"),
    case("data", [], "must be a JSON object"),
    case("data", "{}", "must be a JSON object"),
    # unknown top-level fields are ignored: a producer that adds one is not refused
    case("extra", 1, None),
    case("Event_ID", "ev-1", None),
    case("events", [], None),
]


@pytest.mark.parametrize(("document", "expected"), FIELD_CASES)
def test_field_rules(document: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert problems(document) == expected
    assert problems(json.dumps(document, ensure_ascii=False).encode()) == expected


def test_free_text_must_have_a_utf8_encoding() -> None:
    # Only a Python caller can hand over a lone surrogate (in JSON it is malformed); the event
    # could not be written out again.
    assert problems(changed(INTERACTION, session_id="a\ud800")) == [("session_id", FREE_TEXT)]


# Every character that means something in a NATS subject, or splits one: "." separates tokens,
# "*" and ">" are wildcards, whitespace ends the subject in the protocol.
SUBJECT_BREAKERS = [".", "*", ">", " ", "\t", "\r\n", "a.b", "a*", ">b", "a b", "a.*", "a.>", "\u00a0"]


@pytest.mark.parametrize("token", SUBJECT_BREAKERS)
@pytest.mark.parametrize("field", ["student_id", "game_id"])
def test_subject_token_ids_refuse_nats_metacharacters(field: str, token: str) -> None:
    assert problems(changed(GAME, **{field: token})) == [(field, SUBJECT_ID)]


@pytest.mark.parametrize("token", [token for token in SUBJECT_BREAKERS if token not in (".", "a.b")])
def test_event_id_refuses_nats_wildcards_and_whitespace(token: str) -> None:
    # "." and ":" are allowed in event ids by the contract, so an event id must never be used as
    # one subject token (nor as a KV key: NATS KV keys do not allow ":").
    assert problems(changed(GAME, event_id=token)) == [("event_id", EVENT_ID)]


def data_case(name: str, data: dict[str, Any], *expected: tuple[str, str], type_: str = "game") -> Any:
    base = GAME if type_ == "game" else INTERACTION
    document = changed(base, type=type_, name=name, data=data)
    return pytest.param(document, list(expected), id=f"{type_}/{name}:{json.dumps(data)[:50]}")


DATA_CASES = [
    # game/level_started: level, an integer >= 0; True, 1.0, 1.5 and "1" are not integers.
    data_case("level_started", {"level": 0}),
    data_case("level_started", {"level": 7, "extra": ["anything"]}),
    data_case("level_started", {}, ("data.level", REQUIRED)),
    data_case("level_started", {"level": -1}, ("data.level", COUNT)),
    data_case("level_started", {"level": 1.5}, ("data.level", COUNT)),
    data_case("level_started", {"level": 1.0}, ("data.level", COUNT)),
    data_case("level_started", {"level": "1"}, ("data.level", COUNT)),
    data_case("level_started", {"level": True}, ("data.level", COUNT)),
    data_case("level_started", {"level": None}, ("data.level", COUNT)),
    # game/level_completed: level, score (a number >= 0), duration_ms (an integer >= 0).
    data_case("level_completed", {"level": 0, "score": 0, "duration_ms": 0}),
    data_case("level_completed", {"level": 2, "score": 12.5, "duration_ms": 900}),
    data_case(
        "level_completed",
        {},
        ("data.level", REQUIRED),
        ("data.score", REQUIRED),
        ("data.duration_ms", REQUIRED),
    ),
    data_case("level_completed", {"level": 1, "score": -0.5, "duration_ms": 1}, ("data.score", AMOUNT)),
    data_case("level_completed", {"level": 1, "score": True, "duration_ms": 1}, ("data.score", AMOUNT)),
    data_case("level_completed", {"level": 1, "score": "5", "duration_ms": 1}, ("data.score", AMOUNT)),
    data_case("level_completed", {"level": 1, "score": None, "duration_ms": 1}, ("data.score", AMOUNT)),
    # Every number is bounded at 2**53 (tests of the bound itself: BOUND_CASES).
    data_case("level_completed", {"level": 2**53, "score": 2**53, "duration_ms": 2**53}),
    data_case("level_completed", {"level": 1, "score": 2.0**53, "duration_ms": 1}),
    data_case(
        "level_completed",
        {"level": 2**53 + 1, "score": 2**53 + 1, "duration_ms": 2**70},
        ("data.level", COUNT),
        ("data.score", AMOUNT),
        ("data.duration_ms", COUNT),
    ),
    data_case("level_completed", {"level": 1, "score": 1e308, "duration_ms": 1}, ("data.score", AMOUNT)),
    data_case("level_completed", {"level": 1, "score": 5, "duration_ms": 1.5}, ("data.duration_ms", COUNT)),
    data_case("level_completed", {"level": 1, "score": 5, "duration_ms": -1}, ("data.duration_ms", COUNT)),
    data_case(
        "level_completed",
        {"level": "x", "score": -1, "duration_ms": False},
        ("data.level", COUNT),
        ("data.score", AMOUNT),
        ("data.duration_ms", COUNT),
    ),
    # game/level_failed: level and duration_ms; score optional but checked when present.
    data_case("level_failed", {"level": 1, "duration_ms": 10}),
    data_case("level_failed", {"level": 1, "duration_ms": 10, "score": 3}),
    data_case("level_failed", {"level": 1, "duration_ms": 10, "score": "3"}, ("data.score", AMOUNT)),
    data_case("level_failed", {"level": 1, "duration_ms": 10, "score": None}, ("data.score", AMOUNT)),
    data_case("level_failed", {"level": 1, "duration_ms": 10, "score": 2**53 + 1}, ("data.score", AMOUNT)),
    data_case("level_failed", {"level": 1}, ("data.duration_ms", REQUIRED)),
    data_case("level_failed", {"duration_ms": 1}, ("data.level", REQUIRED)),
    # game/game_finished: outcome, score, duration_ms.
    data_case("game_finished", {"outcome": "win", "score": 10, "duration_ms": 1}),
    data_case("game_finished", {"outcome": "loss", "score": 0.5, "duration_ms": 1}),
    data_case("game_finished", {"outcome": "abandon", "score": 0, "duration_ms": 0}),
    data_case(
        "game_finished",
        {"outcome": "WIN", "score": 1, "duration_ms": 1},
        ("data.outcome", "must be one of win, loss, abandon"),
    ),
    data_case(
        "game_finished",
        {"outcome": "draw", "score": 1, "duration_ms": 1},
        ("data.outcome", "must be one of win, loss, abandon"),
    ),
    data_case(
        "game_finished",
        {"outcome": ["win"], "score": 1, "duration_ms": 1},
        ("data.outcome", "must be one of win, loss, abandon"),
    ),
    data_case("game_finished", {"outcome": "win", "score": 2**53, "duration_ms": 1}),
    data_case("game_finished", {"outcome": "win", "score": 1e300, "duration_ms": 1}, ("data.score", AMOUNT)),
    data_case(
        "game_finished",
        {},
        ("data.outcome", REQUIRED),
        ("data.score", REQUIRED),
        ("data.duration_ms", REQUIRED),
    ),
    # engagement/heartbeat: seconds, a number > 0 and <= 3600.
    data_case("heartbeat", {"seconds": 0.001}, type_="engagement"),
    data_case("heartbeat", {"seconds": 30}, type_="engagement"),
    data_case("heartbeat", {"seconds": 3600}, type_="engagement"),
    data_case("heartbeat", {"seconds": 3600.0}, type_="engagement"),
    *[
        data_case("heartbeat", {"seconds": bad}, ("data.seconds", HEARTBEAT), type_="engagement")
        for bad in (0, 0.0, -1, 3600.001, 3601, True, "30", None)
    ],
    data_case("heartbeat", {}, ("data.seconds", REQUIRED), type_="engagement"),
    # interaction/*: correct, optional, a boolean; for every interaction name.
    data_case("answer_submitted", {"correct": False}, type_="interaction"),
    data_case("answer_submitted", {}, type_="interaction"),
    data_case("hint_opened", {"hint": 2}, type_="interaction"),
    data_case("hint_opened", {"correct": 1}, ("data.correct", BOOLEAN), type_="interaction"),
    data_case("answer_submitted", {"correct": "yes"}, ("data.correct", BOOLEAN), type_="interaction"),
    data_case("answer_submitted", {"correct": None}, ("data.correct", BOOLEAN), type_="interaction"),
    # Rules belong to (type, name): other names, and these names under another type, are free.
    data_case("achievement_unlocked", {"level": "gold"}),
    data_case("session_started", {"seconds": -5}, type_="engagement"),
    data_case("level_completed", {}, type_="engagement"),
    data_case("heartbeat", {"correct": True}, type_="interaction"),
    data_case("heartbeat", {}, type_="interaction"),
]


@pytest.mark.parametrize(("document", "expected"), DATA_CASES)
def test_data_rules(document: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert problems(document) == expected
    assert problems(json.dumps(document).encode()) == expected


def test_keys_must_be_strings() -> None:
    # Only a Python caller can send other keys; in JSON every key is a string.
    assert problems({**INTERACTION, 1: "x", None: "y"}) == []  # unknown top-level keys: ignored
    assert problems(changed(INTERACTION, data={1: "x"})) == [("data", JSON_ONLY)]
    assert problems(changed(INTERACTION, data={"x": {None: 1}})) == [("data", JSON_ONLY)]


def test_data_defaults_to_an_empty_object() -> None:
    assert validate_event(changed(INTERACTION, data=DROP), now=NOW).data == {}


def test_data_rules_need_a_valid_type_and_name() -> None:
    # Which game rules apply is unknown, so only the broken field is reported ...
    assert problems(changed(GAME, name="Level_Completed", data={})) == [("name", NAME)]
    assert problems(changed(GAME, type="games", data={})) == [("type", TYPE)]
    # ... but the rule of every interaction name still holds.
    assert problems(changed(INTERACTION, name="Answer", data={"correct": 1})) == [
        ("name", NAME),
        ("data.correct", "must be a boolean"),
    ]


@pytest.mark.parametrize(
    ("data", "valid"),
    [
        pytest.param({"x": "a" * (16384 - 8)}, True, id="16384 bytes"),
        pytest.param({"x": "a" * (16384 - 7)}, False, id="16385 bytes"),
        # measured as UTF-8 bytes, not characters: each "é" is two bytes
        pytest.param({"x": "é" * ((16384 - 8) // 2)}, True, id="multibyte 16384 bytes"),
        pytest.param({"x": "é" * ((16384 - 8) // 2) + "a"}, False, id="multibyte 16385 bytes"),
        # measured compact: the spaces of the producer's encoding do not count
        # {"x":[ + 1000 x "a" + 999 commas + ],"y":" + N + "} is 4014 + N bytes
        pytest.param({"x": ["a"] * 1000, "y": "b" * (16384 - 4014)}, True, id="compact 16384 bytes"),
        pytest.param({"x": ["a"] * 1000, "y": "b" * (16384 - 4013)}, False, id="compact 16385 bytes"),
    ],
)
def test_data_is_at_most_16_kib_of_compact_utf8_json(data: dict[str, Any], valid: bool) -> None:
    body = json.dumps(changed(INTERACTION, data=data), ensure_ascii=True, indent=4).encode()
    expected = [] if valid else [("data", "must be at most 16384 bytes as compact JSON")]
    assert problems(body) == expected
    assert problems(changed(INTERACTION, data=data)) == expected


def cyclic() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"x": (1, 2)}, id="tuple"),
        pytest.param({"x": {1, 2}}, id="set"),
        pytest.param({"x": {"y": {2: "z"}}}, id="nested int key"),
        pytest.param({"x": datetime(2024, 5, 1, tzinfo=UTC)}, id="datetime"),
        pytest.param({"x": cyclic()}, id="cycle"),
        pytest.param({"x": nested(10_000)}, id="deep"),
    ],
)
def test_data_from_python_must_hold_only_json_values(data: dict[str, Any]) -> None:
    # Anything else would change (or fail) on its way out through to_json_bytes.
    assert problems(changed(INTERACTION, data=data)) == [("data", JSON_ONLY)]


def test_data_from_python_must_hold_only_unicode_text() -> None:
    unicode_only = [("data", "must hold only valid Unicode text")]
    assert problems(changed(INTERACTION, data={"x": ["\udfff"]})) == unicode_only


def test_every_error_of_an_event_is_reported_in_field_order() -> None:
    document = changed(
        GAME, event_id="", student_id="s.1", name="Level", occurred_at="now", game_id=DROP, session_id=1, zz=0
    )
    assert problems(document) == [
        ("event_id", EVENT_ID),
        ("student_id", SUBJECT_ID),
        ("name", NAME),
        ("occurred_at", OCCURRED_AT),
        ("game_id", REQUIRED),
        ("session_id", FREE_TEXT),
    ]


def test_an_empty_object_reports_every_required_field() -> None:
    assert problems({}) == [
        (field, REQUIRED) for field in ("event_id", "student_id", "type", "name", "occurred_at")
    ]


@pytest.mark.parametrize("body", [b"[]", b"42", b"null", b'"event"', [GAME], "[1]"])
def test_validate_event_needs_an_object(body: Any) -> None:
    assert problems(body) == [("", "must be a JSON object")]


def test_validate_event_accepts_bytes_str_and_dict_alike() -> None:
    text = json.dumps(GAME)
    expected = validate_event(GAME, now=NOW)
    assert validate_event(text, now=NOW) == validate_event(text.encode(), now=NOW) == expected


def test_validate_event_leaves_the_callers_dict_alone() -> None:
    document = changed(GAME, game_id=DROP)
    with pytest.raises(InvalidEvents):
        validate_event(document, now=NOW)
    assert "game_id" not in document


@pytest.mark.parametrize(
    ("type_", "name", "missing"),
    [
        ("game", "level_started", ["data.level"]),
        ("game", "level_completed", ["data.duration_ms", "data.level", "data.score"]),
        ("game", "game_finished", ["data.duration_ms", "data.outcome", "data.score"]),
        ("engagement", "heartbeat", ["data.seconds"]),
    ],
)
def test_an_absent_data_is_held_to_the_rules_of_its_event(type_: str, name: str, missing: list[str]) -> None:
    event = {"event_id": "e1", "student_id": "s1", "type": type_, "name": name, "occurred_at": "2024-05-01T10:00:00Z"}
    if type_ == "game":
        event["game_id"] = "g1"
    with pytest.raises(InvalidEvents) as caught:
        validate_event(event, now=1_714_557_600.0)
    assert sorted(e.field for e in caught.value.errors) == missing
    assert all(e.message == "field required" for e in caught.value.errors)
