"""The exceptions ``tables`` adds to the project's root carry data and read well."""

from __future__ import annotations

from tables.errors import InvalidEventError, StateError, StreamsError
from tables.fields import MISSING


def test_invalid_event_error_names_field_value_and_problem() -> None:
    error = InvalidEventError("occurred_at", "soon", "not an RFC 3339 timestamp")
    assert (error.field, error.value, error.problem) == ("occurred_at", "soon", "not an RFC 3339 timestamp")
    assert str(error) == "Event field 'occurred_at' has value 'soon': not an RFC 3339 timestamp"
    assert isinstance(error, StreamsError)
    assert isinstance(error, ValueError)


def test_invalid_event_error_for_a_missing_field() -> None:
    error = InvalidEventError("ts", MISSING, "the event has no such field")
    assert str(error) == "Event field 'ts' has value <missing>: the event has no such field"


def test_state_error_names_the_storage_key() -> None:
    error = StateError("m.window.0.s1", "bad")
    assert (error.key, error.problem) == ("m.window.0.s1", "bad")
    assert str(error) == "Stored state 'm.window.0.s1' cannot be restored: bad"
    assert isinstance(error, StreamsError)
