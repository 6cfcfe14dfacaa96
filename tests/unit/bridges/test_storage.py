"""Which JetStream answers mean "no room", and the storage-full state a process keeps."""

from __future__ import annotations

import logging

import pytest
from nats.js.errors import APIError, BadRequestError, ServerError, ServiceUnavailableError

from bridges.storage import StorageState, storage_full, storage_full_from
from tables.errors import StorageFull


@pytest.mark.parametrize(
    ("err_code", "description", "scope"),
    [
        pytest.param(10023, "insufficient resources", "server", id="server-store-full"),
        pytest.param(10002, "resource limits exceeded for account", "account", id="account-limit"),
        pytest.param(10077, "maximum bytes exceeded", "stream", id="stream-byte-cap"),
        pytest.param(10077, "maximum messages exceeded", "stream", id="stream-message-cap"),
        pytest.param(10023, None, "server", id="server-without-description"),
    ],
)
def test_no_room_answers_are_storage_full(err_code: int, description: str | None, scope: str) -> None:
    error = storage_full(err_code, description, "faust.events.1", stream="FAUST_events_1")
    assert isinstance(error, StorageFull)
    assert (error.scope, error.subject, error.stream) == (scope, "faust.events.1", "FAUST_events_1")
    assert str(error).startswith("storage full: ")


@pytest.mark.parametrize(
    ("err_code", "description"),
    [
        pytest.param(10071, "wrong last sequence: 3", id="fence"),
        pytest.param(10077, "message too large", id="store-failed-otherwise"),
        pytest.param(10047, "insufficient storage resources available", id="stream-reservation"),
        pytest.param(10165, "invalid per-message TTL", id="probe-refused-with-room"),
        pytest.param(10059, "stream not found", id="not-found"),
        pytest.param(None, "no responders", id="no-code"),
    ],
)
def test_other_answers_are_not_storage_full(err_code: int | None, description: str) -> None:
    assert storage_full(err_code, description, "s") is None


@pytest.mark.parametrize(
    ("exc", "scope"),
    [
        pytest.param(ServiceUnavailableError(code=503, err_code=10023, description="insufficient resources"), "server"),
        pytest.param(BadRequestError(code=400, err_code=10002, description="resource limits exceeded for account"), "account"),
        pytest.param(
            ServiceUnavailableError(code=503, err_code=10077, description="maximum bytes exceeded", stream="KV_g"),
            "stream",
        ),
    ],
)
def test_nats_py_errors_are_classified_from_their_err_code(exc: APIError, scope: str) -> None:
    error = storage_full_from(exc, "$KV.g.k")
    assert error is not None and error.scope == scope
    assert error.subject == "$KV.g.k"


def test_nats_py_errors_that_are_not_storage_full_stay_what_they_are() -> None:
    assert storage_full_from(ServerError(code=500, err_code=10047, description="insufficient"), "s") is None
    assert storage_full_from(TimeoutError(), "s") is None
    assert storage_full_from(APIError(), "s") is None


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def full(subject: str) -> StorageFull:
    return StorageFull(subject, "server", "insufficient resources")


def test_the_state_is_entered_and_left_once_each_with_how_long_it_lasted(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    state = StorageState("ingest", "events are answered 503", clock=clock)
    assert not state.full and state.error is None and state.seconds() == 0.0
    with caplog.at_level(logging.WARNING, logger="bridges.storage"):
        state.refused(full("a"))
        clock.now += 3.0
        state.refused(full("a"))
        state.refused(full("b"))
        assert state.full and state.resources == ["a", "b"] and state.seconds() == 3.0
        assert state.error is not None and state.error.subject == "b"
        state.stored("a")
        assert state.full  # b has not stored anything since
        clock.now += 1.5
        state.stored("b")
    assert not state.full and state.seconds() == 0.0
    entered, left = caplog.records
    assert entered.levelno == logging.ERROR
    assert entered.getMessage() == (
        "ingest: storage full: the JetStream store of the server is full (insufficient resources); "
        "write to a refused; events are answered 503 until there is room again"
    )
    assert left.levelno == logging.WARNING
    assert left.getMessage() == "ingest: storage has room again after 4.5s (writes refused meanwhile: 3); resuming"


def test_a_write_that_went_through_outside_the_state_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    state = StorageState("worker", "commits wait")
    with caplog.at_level(logging.DEBUG, logger="bridges.storage"):
        state.stored("a")
        state.clear()
    assert not caplog.records


def test_clear_leaves_the_state_whatever_was_refused() -> None:
    state = StorageState("worker", "commits wait", clock=Clock())
    state.refused(full("x"), "changelog")
    state.refused(full("y"), "offsets")
    state.clear()
    assert not state.full and state.refusals == 0
