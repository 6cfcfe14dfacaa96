"""The event contract beyond one event's fields: batches, malformed JSON, error shapes, the model."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

import contract.events as events_module
from contract.events import (
    MAX_BATCH_EVENTS,
    MAX_DATA_BYTES,
    MAX_DATA_NUMBER,
    MAX_FUTURE_SECONDS,
    Event,
    FieldError,
    InvalidEvents,
    MalformedJSON,
    validate_batch,
    validate_event,
)
from tables.errors import StreamsError

from .samples import DROP, GAME, INTERACTION, NOW, changed

ENVELOPE = 'must be an event object or {"events": [...]}'
COUNT = f"must be a list of 1 to {MAX_BATCH_EVENTS} events"


def numbered(count: int) -> list[dict[str, Any]]:
    return [changed(INTERACTION, event_id=f"ev-{n}") for n in range(count)]


def batch_errors(body: Any) -> list[FieldError]:
    with pytest.raises(InvalidEvents) as raised:
        validate_batch(body, now=NOW)
    return raised.value.errors


def test_the_contract_limits() -> None:
    assert (MAX_BATCH_EVENTS, MAX_DATA_BYTES, MAX_DATA_NUMBER, MAX_FUTURE_SECONDS) == (1000, 16384, 2**53, 300)


def test_a_single_event_body_is_a_batch_of_one() -> None:
    assert validate_batch(json.dumps(GAME).encode(), now=NOW) == [validate_event(GAME, now=NOW)]


@pytest.mark.parametrize("count", [1, 2, MAX_BATCH_EVENTS])
def test_a_batch_keeps_its_order(count: int) -> None:
    body = json.dumps({"events": numbered(count)})
    assert [event.event_id for event in validate_batch(body, now=NOW)] == [f"ev-{n}" for n in range(count)]


@pytest.mark.parametrize("events", [[], numbered(MAX_BATCH_EVENTS + 1), None, {"0": GAME}, GAME, "[]"])
def test_a_batch_holds_1_to_1000_events(events: Any) -> None:
    assert batch_errors({"events": events}) == [FieldError(-1, "events", COUNT)]


def test_an_oversized_batch_is_refused_without_looking_at_its_events() -> None:
    bad = [changed(INTERACTION, event_id="")] * (MAX_BATCH_EVENTS + 1)
    assert batch_errors({"events": bad}) == [FieldError(-1, "events", COUNT)]


@pytest.mark.parametrize("body", [b"[]", b"[{}]", b"42", b"null", b'"x"', b"true", [GAME], None])
def test_anything_but_an_object_is_not_a_batch(body: Any) -> None:
    assert batch_errors(body) == [FieldError(-1, "", ENVELOPE)]


def test_every_error_of_every_event_is_collected_with_its_index() -> None:
    body = {
        "events": [
            changed(INTERACTION, event_id="ok-0"),
            changed(INTERACTION, student_id="s*", occurred_at="2024-05-01T10:00:00"),
            "not an event",
            changed(GAME, game_id=">", data={"level": 1.5, "score": 1, "duration_ms": 1}),
        ],
        "source": "web",
    }
    assert batch_errors(body) == [
        FieldError(1, "student_id", "must be 1-64 characters of A-Z a-z 0-9 _ -"),
        FieldError(1, "occurred_at", "must be RFC 3339 with a UTC offset"),
        FieldError(2, "", "must be a JSON object"),
        FieldError(3, "game_id", "must be 1-64 characters of A-Z a-z 0-9 _ -"),
        FieldError(3, "data.level", "must be an integer >= 0 and <= 9007199254740992"),
    ]


def test_one_bad_event_fails_the_whole_batch() -> None:
    events = [*numbered(3), changed(INTERACTION, occurred_at="2024-05-01T11:00:00Z")]
    assert batch_errors({"events": events}) == [
        FieldError(3, "occurred_at", "is more than 5 minutes in the future")
    ]


def test_extra_envelope_keys_are_ignored_and_a_bad_count_reported() -> None:
    assert batch_errors({"events": [], "meta": {}}) == [FieldError(-1, "events", COUNT)]


def test_single_event_errors_have_index_0() -> None:
    assert batch_errors(changed(GAME, event_id=DROP)) == [FieldError(0, "event_id", "field required")]



def test_invalid_events_carries_the_errors_and_summarises_them() -> None:
    errors = [FieldError(n, "name", "must be 1-64 characters of a-z 0-9 _") for n in range(7)]
    exc = InvalidEvents(errors)
    assert exc.errors == errors
    assert isinstance(exc, StreamsError)
    assert str(exc).startswith(
        "7 invalid field(s): [0] name: must be 1-64 characters of a-z 0-9 _; [1] name:"
    )
    assert "[4] name" in str(exc) and "[5] name" not in str(exc)
    assert str(exc).endswith("(and 2 more)")
    assert str(InvalidEvents([FieldError(-1, "", "x"), FieldError(0, "", "y")])) == (
        "2 invalid field(s): [-1] (body): x; [0] (event): y"
    )


def test_field_errors_are_values() -> None:
    error = FieldError(2, "data.level", "must be an integer >= 0")
    assert error == FieldError(2, "data.level", "must be an integer >= 0")
    with pytest.raises(AttributeError):
        error.index = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("body", "line", "column"),
    [
        (b'{"event_id": ', 1, 13),
        (b'{"data": {"x": NaN}}', 1, 16),
        (b'{"data": {"x": Infinity}}', 1, 16),
        (b'{"data": {"x": -Infinity}}', 1, 17),
        (b'{"a": 1}\n\n  x', 3, 3),
        (b"", 1, 0),
        (b"{'a': 1}", 1, 2),
        (b'{"a": 1,}', 1, 9),
        (b"\xef\xbb\xbf{}", 1, 1),  # a byte order mark
        (b"\xff{}", 1, 1),  # not UTF-8
        (b'{"name": "\xc3"}', 1, 11),  # a truncated UTF-8 sequence
        (b'{"name": "\\ud800"}', 1, 17),  # a lone surrogate, escaped
        ('{"é": x}'.encode(), 1, 8),  # the column counts bytes
        (b"[" * 300, 1, 202),  # nesting deeper than the parser's limit
    ],
)
def test_malformed_json_says_where(body: bytes, line: int, column: int) -> None:
    # The reason is the parser's wording, which may change between versions; the position is
    # what a producer needs.
    for validate in (validate_event, validate_batch):
        with pytest.raises(MalformedJSON) as raised:
            validate(body, now=NOW)
        assert (raised.value.line, raised.value.column) == (line, column)
        assert raised.value.reason
        assert str(raised.value) == f"malformed JSON at line {line} column {column}: {raised.value.reason}"
        assert isinstance(raised.value, StreamsError)
        assert not isinstance(raised.value, InvalidEvents)


@pytest.mark.parametrize(
    ("body", "line", "column"),
    [
        ('{"name": "\ud800"}', 1, 11),
        ('{"x": 1,\n"é": "\udc80"}', 2, 8),  # the column counts UTF-8 bytes, as the parser's does
    ],
)
def test_a_str_that_is_not_unicode_is_malformed(body: str, line: int, column: int) -> None:
    with pytest.raises(MalformedJSON) as raised:
        validate_batch(body, now=NOW)
    assert (raised.value.reason, raised.value.line, raised.value.column) == (
        "lone surrogate, not valid Unicode",
        line,
        column,
    )


def test_to_json_bytes_is_canonical_compact_json() -> None:
    document = changed(
        GAME,
        occurred_at="2024-05-01T12:00:00.250+02:00",
        session_id="séance ✓",
        data={
            "z": [1, 2.5, None, 1.0],
            "a": {"é": True, "b": "x"},
            "level": 3,
            "score": 1,
            "duration_ms": 2,
        },
    )
    assert validate_event(document, now=NOW).to_json_bytes() == (
        '{"data":{"a":{"b":"x","é":true},"duration_ms":2,"level":3,"score":1,"z":[1,2.5,null,1.0]},'
        '"event_id":"ev-2","game_id":"g-math","name":"level_completed",'
        '"occurred_at":"2024-05-01T10:00:00.250000Z","session_id":"séance ✓",'
        '"student_id":"s-42","type":"game"}'
    ).encode()


def test_to_json_bytes_keeps_whole_seconds_short_and_always_writes_data() -> None:
    event = validate_event(changed(INTERACTION, occurred_at="2024-05-01T05:00:00-05:00", data=DROP), now=NOW)
    assert event.to_json_bytes() == (
        b'{"data":{},"event_id":"ev-1","name":"answer_submitted","occurred_at":"2024-05-01T10:00:00Z",'
        b'"student_id":"s-42","type":"interaction"}'
    )


def test_equal_events_give_equal_bytes_and_round_trip() -> None:
    shuffled = dict(reversed(list(changed(GAME, occurred_at="2024-05-01T11:00:00+01:00").items())))
    first, second = validate_event(GAME, now=NOW), validate_event(json.dumps(shuffled), now=NOW)
    assert first == second
    assert first.to_json_bytes() == second.to_json_bytes()
    assert validate_event(first.to_json_bytes(), now=NOW) == first
    assert Event.model_validate_json(first.to_json_bytes()) == first


def test_timestamp_is_float_epoch_seconds() -> None:
    event = validate_event(changed(GAME, occurred_at="2024-05-01T12:00:01.5+02:00"), now=NOW)
    assert event.timestamp == NOW + 1.5
    assert type(event.timestamp) is float


def test_events_are_frozen() -> None:
    event = validate_event(GAME, now=NOW)
    with pytest.raises(ValidationError):
        event.student_id = "someone-else"  # type: ignore[misc]


def test_the_model_checks_the_future_only_when_given_now() -> None:
    document = changed(GAME, occurred_at="2030-01-01T00:00:00Z")
    # An agent re-reading an admitted event has no "now" to apply, and must not drop it.
    assert Event.model_validate(document).occurred_at == datetime(2030, 1, 1, tzinfo=UTC)
    with pytest.raises(ValidationError, match="is more than 5 minutes in the future"):
        Event.model_validate(document, context={"now": NOW})


def test_the_model_enforces_the_data_rules_itself() -> None:
    with pytest.raises(ValidationError, match="must be an integer >= 0") as raised:
        Event.model_validate(changed(GAME, data={"level": -1, "score": 1, "duration_ms": 1}))
    assert raised.value.errors()[0]["loc"] == ("data", "level")
    with pytest.raises(ValidationError, match="must be a number >= -9007199254740992") as raised:
        Event.model_validate(changed(INTERACTION, data={"a": [0, 2**54]}))
    assert raised.value.errors()[0]["loc"] == ("data", "a", 1)


def test_the_models_own_errors_do_not_echo_input() -> None:
    # Whoever logs a ValidationError must not log 16 KiB of someone else's data.
    with pytest.raises(ValidationError) as raised:
        Event.model_validate(
            changed(INTERACTION, student_id="secret value", data={"x": "secret data" * 2000})
        )
    assert "secret" not in str(raised.value)


def test_the_public_surface_is_small_and_sorted() -> None:
    assert events_module.__all__ == [
        "Event",
        "FieldError",
        "InvalidEvents",
        "MAX_BATCH_EVENTS",
        "MAX_DATA_BYTES",
        "MAX_DATA_NUMBER",
        "MAX_FUTURE_SECONDS",
        "MalformedJSON",
        "validate_batch",
        "validate_event",
    ]
    assert events_module.__all__ == sorted(events_module.__all__)
    assert all(hasattr(events_module, name) for name in events_module.__all__)
