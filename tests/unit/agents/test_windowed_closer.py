"""The windowed runtime's closer and updater in one process, with results kept in memory.

The runtime of ``runtime.py``, with a writer that records what it is asked to write. The closer
must close a due window once flow resumes, and must not spin while partitions are moving or
while the lease may have expired (nor close anything then); the updater writes provisional values
only when switched on.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable
from typing import Any

import pytest

from agents.windowed import WindowedRuntime

from .runtime import GRACE, WINDOW, windowed_runtime


class RecordingResults:
    def __init__(self) -> None:
        self.finals: dict[str, dict[str, Any]] = {}
        self.provisional: list[dict[str, Any]] = []
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


def runtime_with(results: RecordingResults, *, update_seconds: float = 0.0) -> WindowedRuntime:
    return windowed_runtime(results, update_seconds=update_seconds)


def event(occurred_at: float, n: int) -> bytes:
    return json.dumps({
        "event_id": f"e{n}", "student_id": "s1", "type": "interaction", "name": "answer",
        "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(occurred_at)),
        "data": {"correct": True},
    }).encode()


async def test_a_due_window_waits_while_partitions_move_without_spinning_then_closes() -> None:
    results = RecordingResults()
    runtime = runtime_with(results)
    # An event two windows before the next: the next moves the watermark past the first
    # window's end + grace, so that window is due at once.
    await runtime.add(0, 0, event(time.time() - 2 * WINDOW - GRACE, 1))
    await runtime.add(0, 1, event(time.time(), 2))
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
    runtime = runtime_with(results)
    await runtime.add(0, 0, event(time.time() - 2 * WINDOW - GRACE, 1))
    await runtime.add(0, 1, event(time.time(), 2))  # the first window is due now
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
    await runtime.add(0, 0, event(time.time(), 1))  # an open window
    await runtime.run_updater(Stopper(0.35))  # type: ignore[arg-type]
    if update_seconds:
        # written once: it did not change after the first write
        assert [(v["final"], v["events"]) for v in results.provisional] == [(False, 1)]
    else:
        assert results.provisional == []
    assert results.finals == {}
