"""The test driver: a metric run on events without NATS, writing what a worker would write.

Windows close when the test's clock passes their end + grace; late events, retries, events the
contract or the metric refuses, poisoned aggregators and batch records give the dead letters a
worker gives (subject, payload, reason and ``Nats-Msg-Id``); and the same records through the
worker's runtime and through the driver give the same writes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

import pytest

from agents import engagement
from agents.windowed import DeadLetter, MetricDriver, Published
from agents.windowed.decisions import worker_definition
from app.web.event_rules import judge_payload
from bridges.public.nats_ingest import Rejection
from tables import Aggregates, Aggregator, Count, MetricDefinition, Promise, Session, Tumbling
from tables.batch import encode_batch
from tables.errors import ConfigError

from .harness import ScriptedClock, windowed_runtime

T0 = 1_714_557_600  # 2024-05-01T10:00:00Z; windows of 60 s close 10 s after their end
KEY = f"engagement.s1.{T0}"


def answer(event_id: str, second: float, correct: bool = True, student: str = "s1") -> dict[str, Any]:
    moment = datetime.fromtimestamp(T0 + second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"event_id": event_id, "student_id": student, "type": "interaction", "name": "answer_submitted",
            "occurred_at": moment, "data": {"correct": correct}}


def canonical(event: dict[str, Any]) -> bytes:
    """What a worker dead-letters of an event of a batch: its compact JSON, keys sorted as ingest wrote them."""
    return json.dumps(dict(sorted(event.items())), separators=(",", ":")).encode()


def test_a_window_is_stored_and_published_once_its_end_plus_grace_has_passed() -> None:
    driver = MetricDriver(engagement.define, now=T0 + 5)
    driver.send(answer("e1", 3))
    driver.send(json.dumps(answer("e2", 40, correct=False)), arrived_at=T0 + 41)
    driver.advance_to(T0 + 69.999)
    assert driver.kv == {} and driver.published == []
    driver.advance_to(T0 + 70)
    stored = driver.kv[KEY]
    assert json.loads(stored) == {
        "metric": "engagement", "key": {"student_id": "s1"},
        "window": {"start": "2024-05-01T10:00:00Z", "end": "2024-05-01T10:01:00Z"},
        "final": True, "events": 2,
        "values": {"interactions": 2, "answers": 2, "correct": 1, "active_seconds": 0, "sessions": 0, "accuracy": 0.5},
    }
    assert driver.published == [Published("results.engagement.s1", stored, f"result:{KEY}")]
    assert driver.kv_writes == [(KEY, stored)] and driver.finals() == {KEY: json.loads(stored)}
    assert driver.watermark == driver.now == T0 + 70


def test_an_event_arriving_at_its_window_s_end_plus_grace_is_late_and_said_why() -> None:
    driver = MetricDriver(engagement.define, now=T0 + 69.5)
    driver.send(answer("in-time", 30))  # after the window's end, within the grace: counted
    driver.advance_to(T0 + 70)
    driver.send(answer("late", 30))
    assert driver.finals()[KEY]["events"] == 1
    assert driver.dead_letters == [
        DeadLetter(
            "deadletter.late.engagement",
            canonical(answer("late", 30)),
            "metric 'engagement': event time 2024-05-01T10:00:30Z is late: it arrived at 2024-05-01T10:01:10Z, "
            "at or after its window [2024-05-01T10:00:00Z, 2024-05-01T10:01:00Z) closed "
            "(2024-05-01T10:01:10Z, its end + grace of 10s)",
            "late:engagement:0:2.0",
        )
    ]
    assert driver.stats["late"] == 1


def test_lateness_depends_on_the_arrival_not_on_when_the_window_closes() -> None:
    # Arrived in time, sent to the driver after its window's close was due: counted, as a worker
    # working off a backlog counts it.
    driver = MetricDriver(engagement.define, now=T0 + 500)
    driver.send(answer("backlog", 30), arrived_at=T0 + 35)
    driver.close_all()
    assert driver.finals()[KEY]["events"] == 1 and driver.dead_letters == []


def test_an_event_id_counts_once_per_window_however_often_it_comes() -> None:
    driver = MetricDriver(engagement.define, now=T0 + 10)
    driver.send(answer("e1", 5))
    driver.send(answer("e1", 5), arrived_at=T0 + 50)  # a retry
    driver.send(answer("e1", 6, correct=False), arrived_at=T0 + 60)  # the id is what counts
    driver.close_all()
    assert driver.finals()[KEY]["events"] == 1 and driver.finals()[KEY]["values"]["correct"] == 1
    assert driver.stats["duplicates"] == 2 and driver.dead_letters == []


@pytest.mark.parametrize(
    "payload",
    [
        b"{",
        b'{"event_id": "e1"}',
        json.dumps({**answer("e1", 5), "student_id": "a.b"}).encode(),
        json.dumps(answer("e1", 301)).encode(),  # more than 5 minutes ahead of its arrival (T0)
    ],
)
def test_an_event_the_contract_refuses_is_dead_lettered_as_nats_ingest_does(payload: bytes) -> None:
    driver = MetricDriver(engagement.define, now=T0)
    driver.send(payload)
    rejection = judge_payload(payload, T0)
    assert isinstance(rejection, Rejection)
    assert driver.dead_letters == [DeadLetter("deadletter.invalid", payload, rejection.reason, None)]
    assert driver.stats == {}  # it never reached the metric


def test_a_record_the_metric_cannot_read_goes_to_its_invalid_subject() -> None:
    driver = MetricDriver(engagement.define, now=T0)
    driver.send_record(b'{"student_id": "s1"}')
    driver.send_record(b"not json")
    first, second = driver.dead_letters
    assert (first.subject, first.payload, first.msg_id) == (
        "deadletter.invalid.engagement", b'{"student_id": "s1"}', "invalid:engagement:0:1"
    )
    assert first.reason.startswith("Event field 'occurred_at' has value <missing>: the event has no such field")
    assert (second.subject, second.msg_id) == ("deadletter.invalid.engagement", "invalid:engagement:0:2")
    assert second.reason.startswith("not a JSON event: ")


class Fragile(Aggregator):
    """Counts events, and raises on one marked poisoned."""

    def initialize(self) -> int:
        return 0

    def agg(self, state: int, event: Any, ts: float) -> int:
        if event.get("data", {}).get("marker") == "poison":
            raise RuntimeError(f"cannot aggregate event {event['event_id']}")
        return state + 1

    def result(self, state: int) -> int:
        return state


def poisoned(finalize: Any = None) -> MetricDefinition:
    return MetricDefinition(
        name="poisoned", key_fields=("student_id",), time_field="occurred_at", window=Tumbling(60), grace=10,
        aggregates=Aggregates({"events": Count(), "checked": Fragile()}, finalize=finalize),
    )


def test_an_event_a_poisoned_aggregator_raises_on_goes_to_the_error_subject() -> None:
    driver = MetricDriver(poisoned(), now=T0 + 10)
    driver.send(answer("e1", 5))
    poison = {**answer("e2", 6), "data": {"marker": "poison"}}
    driver.send(poison)
    driver.close_all()
    assert driver.dead_letters == [
        DeadLetter("deadletter.error.poisoned", canonical(poison), "RuntimeError: cannot aggregate event e2",
                   "error:poisoned:0:2.0")
    ]
    # All of it or none of it: Count did not count the poisoned event either.
    assert driver.finals()[f"poisoned.s1.{T0}"]["values"] == {"events": 1, "checked": 1}


def test_a_window_whose_result_fails_is_dead_lettered_and_the_others_close() -> None:
    def finalize(values: dict[str, Any]) -> dict[str, Any]:
        return {"ratio": values["checked"] / (values["events"] - 1)}

    driver = MetricDriver(poisoned(finalize), now=T0 + 10)
    driver.send(answer("e1", 5))
    driver.send(answer("e2", 7, student="s2"))
    driver.send(answer("e3", 8, student="s2"))
    driver.close_all()
    (letter,) = driver.dead_letters
    assert letter.subject == "deadletter.error.poisoned" and letter.msg_id == f"window-error:poisoned.s1.{T0}"
    assert letter.reason == "ZeroDivisionError: division by zero"
    assert letter.json() == {
        "metric": "poisoned", "key": {"student_id": "s1"},
        "window": {"start": "2024-05-01T10:00:00Z", "end": "2024-05-01T10:01:00Z"},
        "events": 1, "error": "ZeroDivisionError: division by zero",
    }
    assert list(driver.finals()) == [f"poisoned.s2.{T0}"]
    assert driver.stats["windows_failed"] == 1 and driver.stats["windows_closed"] == 1


def test_a_batch_record_carries_each_event_s_arrival_and_a_watermark_promise() -> None:
    driver = MetricDriver(engagement.define, now=T0)
    events = [answer("e1", 10), answer("e2", 20), answer("e3", 30)]
    arrivals = [T0 + 11, T0 + 69, T0 + 70]  # the last one arrived as its window closed: late
    record = encode_batch([canonical(e) for e in events], arrivals, watermark=T0 + 70)
    driver.send_record(record)
    # The writer promised that every later record arrived at 10:01:10 or after: the window closes
    # without the test moving the clock.
    assert driver.now == T0 and driver.watermark == T0 + 70
    assert driver.finals()[KEY]["events"] == 2
    (letter,) = driver.dead_letters
    assert (letter.subject, letter.payload, letter.msg_id) == (
        "deadletter.late.engagement", canonical(events[2]), "late:engagement:0:1.2"
    )


def test_provisional_values_until_the_final_replaces_them() -> None:
    driver = MetricDriver(engagement.define, now=T0 + 10, provisional=True)
    driver.send(answer("e1", 5))
    driver.write_updates()
    driver.write_updates()  # nothing changed: nothing written
    driver.send(answer("e2", 6, correct=False))
    driver.write_updates()
    assert json.loads(driver.kv[KEY]) | {"values": None} == {
        "metric": "engagement", "key": {"student_id": "s1"},
        "window": {"start": "2024-05-01T10:00:00Z", "end": "2024-05-01T10:01:00Z"},
        "final": False, "events": 2, "values": None,
    }
    assert driver.finals() == {} and driver.published == []
    driver.close_all()
    writes = [(key, json.loads(value)) for key, value in driver.kv_writes]
    assert [(key, doc["final"], doc["events"]) for key, doc in writes] == [
        (KEY, False, 1), (KEY, False, 2), (KEY, True, 2)
    ]
    assert driver.kv[KEY] == driver.published[0].payload
    driver.write_updates()  # never over a final value
    assert len(driver.kv_writes) == 3


def test_sessions_have_no_provisional_values_and_the_driver_needs_them_asked_for() -> None:
    sessions = MetricDefinition(
        name="sessions", key_fields=("student_id",), time_field="occurred_at", window=Session(30),
        aggregates=Aggregates({"events": Count()}),
    )
    driver = MetricDriver(sessions, now=T0 + 10, provisional=True)
    driver.send(answer("e1", 5))
    driver.write_updates()
    assert driver.kv == {}
    with pytest.raises(ConfigError, match="provisional"):
        MetricDriver(engagement.define, now=T0).write_updates()


def test_the_clock_never_goes_back_and_close_all_closes_everything() -> None:
    driver = MetricDriver(engagement.define, now=T0 + 10)
    with pytest.raises(ConfigError, match="never goes back"):
        driver.advance_to(T0)
    with pytest.raises(ConfigError, match="finite"):
        MetricDriver(engagement.define, now=float("nan"))
    driver.send(answer("e1", 5))
    driver.send(answer("e2", 125), arrived_at=T0 + 126)  # its own arrival moves no clock
    assert driver.now == T0 + 10 and driver.watermark is None
    driver.close_all()
    assert set(driver.finals()) == {KEY, f"engagement.s1.{T0 + 120}"}
    assert driver.now == T0 + 190  # the last window's end + grace
    driver.close_all()  # nothing open: nothing moves
    assert driver.now == T0 + 190


def test_a_definition_s_window_and_grace_come_from_define_s_arguments() -> None:
    driver = MetricDriver(engagement.define, now=T0 + 6, window_seconds=5, grace_seconds=1)
    assert driver.definition.id_field == "event_id"  # as a worker runs it
    driver.send(answer("e1", 5))
    driver.advance_to(T0 + 11)
    assert list(driver.finals()) == [f"engagement.s1.{T0 + 5}"]


# -- the same decisions as a worker -------------------------------------------------------------


class Recording:
    """A ``ResultWriter`` keeping everything as the driver reports it."""

    def __init__(self) -> None:
        self.kv: dict[str, bytes] = {}
        self.published: list[Published] = []
        self.dead: list[tuple[str, bytes, str, str]] = []

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def wait_writable(self, timeout: float) -> bool:
        return True

    async def write_result(self, kv_key: str, subject: str, payload: bytes) -> Awaitable[None]:
        self.kv[kv_key] = payload
        self.published.append(Published(subject, payload, f"result:{kv_key}"))
        return _done()

    async def write_provisional(self, kv_key: str, payload: bytes) -> Awaitable[None]:
        raise AssertionError("no provisional values here")

    async def dead_letter(self, subject: str, payload: bytes, *, reason: str, msg_id: str) -> Awaitable[None]:
        self.dead.append((subject, payload, reason, msg_id))
        return _done()


def _done() -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


async def test_the_worker_s_runtime_and_the_driver_write_the_same() -> None:
    events = [answer("e1", 5), answer("e2", 50, student="s2"), answer("e1", 7), answer("e3", 30), answer("e4", 65)]
    arrivals = [T0 + 6, T0 + 51, T0 + 52, T0 + 75, T0 + 80]  # a retry, a late event, another window
    records = [(encode_batch([canonical(e)], [a]), a) for e, a in zip(events, arrivals, strict=True)]
    records.insert(2, (b'{"student_id": "s1"}', T0 + 51.5))  # a record the metric cannot read
    definition = worker_definition(engagement.define(60, 10))

    results, clock = Recording(), ScriptedClock()
    runtime = windowed_runtime(results, clock=clock, definition=definition)
    driver = MetricDriver(definition, now=T0)
    for offset, (record, arrival) in enumerate(records, start=1):
        await runtime.add(0, offset, record, arrival)
        driver.send_record(record, stored_at=arrival)
        # Both read the stream: every record after this one arrived at or after this one.
        clock.promises[0] = Promise(offset, arrival)
        await runtime.tick()
        driver.advance_to(arrival)
    clock.promises[0] = Promise(len(records), T0 + 200)
    await runtime.tick()
    driver.advance_to(T0 + 200)

    assert results.kv == driver.kv and len(driver.kv) == 3
    assert results.published == driver.published
    assert [DeadLetter(*letter) for letter in results.dead] == driver.dead_letters
    assert {letter.subject for letter in driver.dead_letters} == {
        "deadletter.invalid.engagement", "deadletter.late.engagement"
    }
    assert runtime.stats == driver.stats
