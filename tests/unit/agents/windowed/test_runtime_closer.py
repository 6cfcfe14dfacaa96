"""The windowed runtime's closer and updater in one process, with results kept in memory.

A real faust app (memory broker, never started) hosts the engagement metric; the writer records
what it is asked to write and a scripted arrival clock says what the streams promise. The closer
must close a due window once flow resumes and must not spin while partitions are moving, while
the lease may have expired (nor close anything then) or while reading the clock keeps failing; a
window whose result fails is dead-lettered and the others
close; the updater writes provisional values only when switched on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Awaitable
from typing import Any

import pytest

from agents.windowed import WindowedRuntime
from tables import Aggregates, Count, MetricDefinition, Promise, Tumbling
from tables.batch import encode_batch

from .harness import GRACE, WINDOW, ScriptedClock, windowed_runtime


class RecordingResults:
    def __init__(self) -> None:
        self.finals: dict[str, dict[str, Any]] = {}
        self.provisional: list[dict[str, Any]] = []
        self.dead: list[tuple[str, dict[str, Any], str]] = []
        #: the lease is valid (set) or may have expired (clear)
        self.writable = asyncio.Event()
        self.writable.set()

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def wait_writable(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self.writable.wait()
        except TimeoutError:
            return False
        return True

    async def write_result(self, kv_key: str, subject: str, payload: bytes) -> Awaitable[None]:
        self.finals[kv_key] = json.loads(payload)
        return _done()

    async def write_provisional(self, kv_key: str, payload: bytes) -> Awaitable[None]:
        self.provisional.append(json.loads(payload))
        return _done()

    async def dead_letter(self, subject: str, payload: bytes, *, reason: str, msg_id: str) -> Awaitable[None]:
        self.dead.append((subject, json.loads(payload), reason))
        return _done()


def _done() -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


class Stopper:
    """A stand-in for the table service: stops after ``seconds``, counting the loop's turns."""

    def __init__(self, seconds: float) -> None:
        self.until = time.monotonic() + seconds
        self.turns = 0

    @property
    def should_stop(self) -> bool:
        self.turns += 1
        return time.monotonic() >= self.until

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(min(seconds, max(0.0, self.until - time.monotonic())))


def runtime_with(
    results: RecordingResults,
    clock: ScriptedClock | None = None,
    *,
    update_seconds: float = 0.0,
    definition: MetricDefinition | None = None,
) -> WindowedRuntime:
    return windowed_runtime(results, clock=clock, update_seconds=update_seconds, definition=definition)


def event(occurred_at: float, n: int) -> bytes:
    return json.dumps({
        "event_id": f"e{n}", "student_id": "s1", "type": "interaction", "name": "answer",
        "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(occurred_at)),
        "data": {"correct": True},
    }).encode()


async def test_a_due_window_waits_while_partitions_move_without_spinning_then_closes() -> None:
    results = RecordingResults()
    clock = ScriptedClock()
    runtime = runtime_with(results, clock)
    old = (int(time.time()) // WINDOW - 3) * WINDOW + 1  # well inside a window that ended long ago
    await runtime.add(0, 1, event(old, 1), old + 1)
    await runtime.add(0, 2, event(time.time(), 2), time.time())
    # The stream promises that everything after record 2 arrived from now on: the first
    # window's end + grace is behind that, so it is due at once.
    clock.promises[0] = Promise(2, time.time())
    runtime.app.rebalancing = True
    paused = Stopper(0.5)
    await runtime.run_closer(paused)  # type: ignore[arg-type]
    assert results.finals == {}, "closed while the partitions were moving"
    # A spinning loop turns tens of thousands of times in half a second; a paused one a few.
    assert paused.turns < 50, paused.turns
    runtime.app.rebalancing = False
    await runtime.run_closer(Stopper(0.3))  # type: ignore[arg-type]
    assert [v["events"] for v in results.finals.values()] == [1]


async def test_nothing_closes_while_the_lease_may_have_expired_and_the_closer_does_not_spin() -> None:
    results = RecordingResults()
    clock = ScriptedClock()
    runtime = runtime_with(results, clock)
    old = (int(time.time()) // WINDOW - 3) * WINDOW + 1
    await runtime.add(0, 1, event(old, 1), old + 1)
    clock.promises[0] = Promise(1, time.time())  # the window is due now
    results.writable.clear()  # e.g. resumed after a SIGSTOP longer than the lease
    fenced = Stopper(0.3)
    await runtime.run_closer(fenced)  # type: ignore[arg-type]
    assert results.finals == {}, "closed a window while the lease may have expired"
    # Each turn waits for a renewal (bounded) instead of retrying at once.
    assert fenced.turns < 10, fenced.turns
    # The window is still open in the state, and closes as soon as the lease is valid again.
    results.writable.set()
    await runtime.run_closer(Stopper(0.3))  # type: ignore[arg-type]
    assert [v["events"] for v in results.finals.values()] == [1]


@pytest.mark.parametrize("update_seconds", [0.0, 0.1])
async def test_the_updater_writes_open_windows_only_when_switched_on(update_seconds: float) -> None:
    results = RecordingResults()
    runtime = runtime_with(results, update_seconds=update_seconds)
    await runtime.add(0, 1, event(time.time(), 1), time.time())  # an open window
    await runtime.run_updater(Stopper(0.35))  # type: ignore[arg-type]
    if update_seconds:
        # written once: it did not change after the first write
        assert [(v["final"], v["events"]) for v in results.provisional] == [(False, 1)]
    else:
        assert results.provisional == []
    assert results.finals == {}


async def test_a_promise_counts_only_once_the_partition_is_processed_past_it() -> None:
    results = RecordingResults()
    clock = ScriptedClock()
    runtime = runtime_with(results, clock)
    old = (int(time.time()) // WINDOW - 3) * WINDOW + 1  # well inside a window that ended long ago
    await runtime.add(0, 1, event(old, 1), old + 1)
    # A backlog: the stream holds 5 records, only 1 is processed; nothing may close yet, since
    # records 2-5 may belong in the window (they arrived before its end + grace).
    clock.promises[0] = Promise(5, time.time())
    await runtime.tick()
    assert results.finals == {}
    for offset in (2, 3, 4, 5):
        await runtime.add(0, offset, event(old + offset, offset), old + offset)
    await runtime.tick()
    assert [v["events"] for v in results.finals.values()] == [5]


def _breaking_result(values: dict[str, Any]) -> dict[str, Any]:
    if values["n"] == 2:
        raise ZeroDivisionError("a bug in finalize")
    return {}


async def test_a_window_whose_result_fails_is_dead_lettered_and_the_others_close() -> None:
    results = RecordingResults()
    clock = ScriptedClock()
    definition = MetricDefinition(
        name="fragile",
        key_fields=("student_id",),
        time_field="occurred_at",
        window=Tumbling(WINDOW),
        grace=GRACE,
        aggregates=Aggregates({"n": Count()}, finalize=_breaking_result),
    )
    runtime = runtime_with(results, clock, definition=definition)
    at = time.time() - 2 * WINDOW - GRACE
    for offset, student in enumerate(["s1", "s2", "s2", "s3"], start=1):
        raw = json.loads(event(at, offset))
        raw["student_id"] = student
        await runtime.add(0, offset, json.dumps(raw).encode(), at + 1)
    clock.promises[0] = Promise(4, time.time())
    await runtime.tick()
    assert sorted(v["key"]["student_id"] for v in results.finals.values()) == ["s1", "s3"]
    [(subject, document, reason)] = results.dead
    assert subject == "deadletter.error.fragile"
    assert document["key"] == {"student_id": "s2"} and document["events"] == 2
    assert reason == document["error"] == "ZeroDivisionError: a bug in finalize"
    assert runtime.stats["windows_failed"] == 1 and runtime.stats["windows_closed"] == 2
    await runtime.tick()  # the failed window left the state: it is not reported again
    assert len(results.dead) == 1


async def test_a_clock_that_cannot_be_read_slows_the_closer_down_instead_of_spinning() -> None:
    results = RecordingResults()
    clock = ScriptedClock()
    clock.failing = True
    runtime = runtime_with(results, clock)
    await runtime.run_closer(Stopper(1.0))  # type: ignore[arg-type]
    # Pauses of 0.5 s, 1 s, ... after the first failures: a handful of reads in a second, where
    # a loop without backoff would read every CLOCK_INTERVAL (4) or spin (thousands).
    assert 1 <= clock.reads <= 3, clock.reads
    assert runtime.stats["closer_failures"] == clock.reads


def answer(event_id: str, occurred_at: float, student: str = "s1") -> bytes:
    return json.dumps({
        "event_id": event_id, "student_id": student, "type": "interaction", "name": "answer",
        "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(occurred_at)), "data": {"correct": True},
    }, sort_keys=True, separators=(",", ":")).encode()


async def test_a_batch_counts_each_event_id_once_and_dead_letters_each_bad_event_by_its_place() -> None:
    results = RecordingResults()
    clock = ScriptedClock()
    runtime = windowed_runtime(results, clock=clock, definition=_with_ids(engagement_definition()))
    at = (int(time.time()) // WINDOW - 3) * WINDOW + 1
    batch = encode_batch(
        [answer("e1", at), answer("e2", at), answer("e1", at), b'{"event_id":"bad","student_id":"s1"}'],
        [at + 1, at + 1, at + 2, at + 2],
    )
    await runtime.add(0, 1, batch, stored_at=time.time())
    await runtime.add(0, 2, encode_batch([answer("e2", at)], [at + 3]), stored_at=time.time())  # a retry
    clock.promises[0] = Promise(2, time.time())
    await runtime.tick()
    assert [v["events"] for v in results.finals.values()] == [2]
    assert runtime.stats["duplicates"] == 2 and runtime.stats["counted"] == 2
    [(subject, letter, reason)] = results.dead
    assert subject == "deadletter.invalid.engagement" and letter["event_id"] == "bad" and "occurred_at" in reason


async def test_a_backlog_closes_its_windows_as_it_goes_by_the_watermarks_its_records_carry() -> None:
    # No reading of the clock at all: the records' own promises move the watermark.
    results = RecordingResults()
    runtime = windowed_runtime(results, definition=_with_ids(engagement_definition()))
    first = (int(time.time()) // WINDOW - 10) * WINDOW + 1
    for n in range(5):  # five minutes of backlog, one record a minute
        at = first + n * WINDOW
        record = encode_batch([answer(f"e{n}", at)], [at], watermark=at - 1)
        await runtime.add(0, n + 1, record, stored_at=time.time())
    await runtime.tick()
    # Each record promised that everything after it arrived at or after its own time: the
    # windows ended more than the grace before the last promise are closed, the others wait.
    assert len(results.finals) == 3, results.finals.keys()


def engagement_definition() -> MetricDefinition:
    from agents import engagement

    return engagement.define(WINDOW, GRACE)


def _with_ids(definition: MetricDefinition) -> MetricDefinition:
    return dataclasses.replace(definition, id_field="event_id")
