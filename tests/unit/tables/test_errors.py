"""The exceptions ``tables`` adds to the project's root carry data and read well."""

from __future__ import annotations

from tables.errors import BrokenError, InvalidEventError, StateError, StorageFull, StreamsError
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


def test_storage_full_says_what_is_full_and_which_write_was_refused() -> None:
    error = StorageFull("faust.events.3", "server", "insufficient resources", stream="FAUST_events_3")
    assert (error.subject, error.scope, error.description, error.stream) == (
        "faust.events.3", "server", "insufficient resources", "FAUST_events_3",
    )
    assert str(error) == (
        "storage full: the JetStream store of the server is full (insufficient resources); "
        "write to faust.events.3 refused"
    )
    assert isinstance(error, BrokenError)


def test_storage_full_of_one_stream_names_the_stream() -> None:
    error = StorageFull("$KV.metrics.k", "stream", "maximum bytes exceeded", stream="KV_metrics")
    assert str(error) == (
        "storage full: stream KV_metrics is at its cap (maximum bytes exceeded); write to $KV.metrics.k refused"
    )
    account = StorageFull("s", "account", "resource limits exceeded for account")
    assert "the account's JetStream storage limit is reached" in str(account)
