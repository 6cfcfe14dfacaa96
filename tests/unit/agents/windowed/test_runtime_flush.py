"""The windowed runtime's flush: nothing is recorded past a result or dead letter not yet stored.

A flush first awaits every pending write (also those added while it waits); one that failed stays
pending, the flush raises (the consumer then commits no offset), and the next flush awaits it
again, which tries it again. A partition given up takes its pending writes with it: its next
owner recovers from the last marker, which is before them.

The partition starts at a marker with nothing open, and the events are not JSON: each one only
produces a dead letter and moves nothing the changelog records, so a flush that gets past the
pending writes has nothing to send (the test app has no broker to send to). The last test
counts an event and gives the state table a changelog of its own: records a flush could not
store are written by the next one.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Generator, Sequence
from typing import Any

import pytest

from agents.windowed import WindowedRuntime
from tables import BrokenError, Marker, Restored, StorageFull
from tables.compaction import Purge
from testkit.live import rfc3339

from .harness import windowed_runtime


class Attempts:
    """A write whose attempts fail until ``failures`` have been reported, as the real one retries:
    awaiting it again after a failure makes the next attempt."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.attempts = 0
        self.gate: asyncio.Event | None = None

    def __await__(self) -> Generator[Any, None, None]:
        return self._attempt().__await__()

    async def _attempt(self) -> None:
        self.attempts += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.attempts <= self.failures:
            raise BrokenError(f"attempt {self.attempts} not stored")


class Letters:
    """A result writer that hands out the given writes, one per dead letter, in order."""

    def __init__(self, *writes: Attempts) -> None:
        self.writes = list(writes)

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def wait_writable(self, timeout: float) -> bool:
        return True

    async def write_result(self, kv_key: str, subject: str, payload: bytes) -> Awaitable[None]:
        raise AssertionError("no window closes in these tests")

    async def write_provisional(self, kv_key: str, payload: bytes) -> Awaitable[None]:
        raise AssertionError("no provisional values in these tests")

    async def dead_letter(self, subject: str, payload: bytes, *, reason: str, msg_id: str) -> Awaitable[None]:
        return self.writes.pop(0)


def runtime_with(results: Letters) -> WindowedRuntime:
    # Flushed up to offset 1 already; the invalid event at offset 0 moves "applied" to 1 again.
    return windowed_runtime(results, restored=Restored(items=[], marker=Marker(1, round(time.time() * 1_000_000))))


async def test_a_write_that_failed_is_kept_and_tried_again_by_the_next_flush() -> None:
    write = Attempts(failures=1)
    runtime = runtime_with(Letters(write))
    await runtime.add(0, 0, b"not json", time.time())
    with pytest.raises(BrokenError, match="attempt 1"):
        await runtime.flush()
    await runtime.flush()  # the same write, awaited again: its second attempt is stored
    await runtime.flush()  # and then it is no longer pending
    assert write.attempts == 2


async def test_a_flush_waits_for_writes_added_while_it_waits() -> None:
    first, second = Attempts(), Attempts()
    first.gate, second.gate = asyncio.Event(), asyncio.Event()
    runtime = runtime_with(Letters(first, second))
    await runtime.add(0, 0, b"not json", time.time())
    flushing = asyncio.create_task(runtime.flush())
    await asyncio.sleep(0)
    await runtime.add(0, 0, b"still not json", time.time())  # e.g. the agent dead-letters meanwhile
    first.gate.set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert not flushing.done(), "the flush recorded state past a write it did not wait for"
    second.gate.set()
    await asyncio.wait_for(flushing, 5.0)
    assert (first.attempts, second.attempts) == (1, 1)


async def test_writes_that_failed_are_tried_again_side_by_side() -> None:
    first, second = Attempts(failures=1), Attempts(failures=1)
    runtime = runtime_with(Letters(first, second))
    await runtime.add(0, 0, b"not json", time.time())
    await runtime.add(0, 0, b"not json either", time.time())
    with pytest.raises(BrokenError):
        await runtime.flush()
    first.gate, second.gate = asyncio.Event(), asyncio.Event()
    flushing = asyncio.create_task(runtime.flush())
    for _ in range(10):
        await asyncio.sleep(0)
    # Both second attempts are under way while neither is stored: one does not wait for the other.
    assert (first.attempts, second.attempts) == (2, 2)
    second.gate.set()
    first.gate.set()
    await asyncio.wait_for(flushing, 5.0)


async def test_a_flush_cancelled_while_it_waits_is_cancelled_and_the_write_stays_pending() -> None:
    write = Attempts()
    write.gate = asyncio.Event()
    runtime = runtime_with(Letters(write))
    await runtime.add(0, 0, b"not json", time.time())
    flushing = asyncio.create_task(runtime.flush())
    await asyncio.sleep(0)
    flushing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flushing
    write.gate.set()
    before = write.attempts
    await runtime.flush()  # awaited again, and stored
    assert write.attempts == before + 1
    await runtime.flush()  # no longer pending
    assert write.attempts == before + 1


async def test_a_partition_given_up_takes_its_unstored_writes_with_it() -> None:
    write = Attempts(failures=100)
    runtime = runtime_with(Letters(write))
    await runtime.add(0, 0, b"not json", time.time())
    with pytest.raises(BrokenError):
        await runtime.flush()
    runtime.deactivate(0)
    await runtime.flush()
    assert write.attempts == 1


class Changelog:
    """The state table's changelog topic: records what each send carried; ``refusing`` fails
    the sends (as a full store does) until it is cleared."""

    def __init__(self) -> None:
        self.refusing: BaseException | None = None
        self.stored: list[tuple[bytes, bytes | None]] = []

    def get_topic_name(self) -> str:
        return "engagement-changelog"

    async def send(self, *, key: bytes, value: bytes | None, partition: int, headers: dict[str, bytes]) -> Any:
        sent: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.refusing is not None:
            sent.set_exception(self.refusing)
        else:
            self.stored.append((key, value))
            sent.set_result(type("Metadata", (), {"offset": len(self.stored)})())
        return sent


async def test_changelog_records_not_stored_are_written_by_the_next_flush() -> None:
    runtime = runtime_with(Letters())
    changelog = Changelog()
    runtime.table.changelog_topic = changelog  # type: ignore[assignment]
    heartbeat = {
        "event_id": "e-1", "student_id": "s-1", "type": "engagement", "name": "heartbeat",
        "occurred_at": rfc3339(time.time()), "data": {"seconds": 15},
    }
    await runtime.add(0, 1, json.dumps(heartbeat).encode(), time.time())
    changelog.refusing = StorageFull("faust.changelog.0", "server", "insufficient resources")
    with pytest.raises(StorageFull):
        await runtime.flush()
    changelog.refusing = None
    await runtime.flush()
    keys = [key.decode() for key, _ in changelog.stored]
    assert keys[-1] == "engagement.marker"
    windows = [value for key, value in changelog.stored if b"s-1" in key]
    assert windows and windows[0] is not None, f"the window of s-1 was not written again: {keys}"


class Leftovers:
    """A changelog partition's purger whose stream holds ``messages`` (an earlier writer's leftovers)."""

    def __init__(self, messages: int) -> None:
        self.messages = messages
        self.counted = 0
        self.purged: list[Purge] = []

    async def purge_changelog(self, topic: str, partition: int, purges: Sequence[Purge]) -> list[Purge]:
        self.purged += purges
        return []

    async def changelog_records(self, topic: str, partition: int) -> int | None:
        self.counted += 1
        return self.messages


async def test_a_partition_taken_over_while_idle_removes_the_last_writers_leftovers() -> None:
    """A worker killed mid-flush leaves that flush's records behind. The new owner counts the
    stream's messages after its first flush; an idle partition has nothing to flush, so without
    a flush made for the count the leftovers would stay until the partition's next event."""
    now_us = round(time.time() * 1_000_000)
    leftovers = Leftovers(messages=5_000)
    runtime = windowed_runtime(
        Letters(), restored=Restored(items=[], marker=Marker(7, now_us, closed_us=now_us)), purger=leftovers
    )
    changelog = Changelog()
    runtime.table.changelog_topic = changelog  # type: ignore[assignment]
    await runtime.flush()  # nothing changed, nothing processed: a marker all the same, then the count
    assert leftovers.counted == 1
    assert [key for key, _ in changelog.stored] == [b"engagement.marker"]
    await runtime.flush()  # the count said "rewrite": the open state, a marker, then everything before it goes
    assert leftovers.purged and leftovers.purged[-1].key is None, leftovers.purged
    written = len(changelog.stored)
    await runtime.flush()
    await runtime.flush()
    assert len(changelog.stored) == written, "an idle partition kept writing after its count"
    assert leftovers.counted == 1


async def test_an_idle_partition_without_a_purger_writes_nothing() -> None:
    now_us = round(time.time() * 1_000_000)
    runtime = windowed_runtime(Letters(), restored=Restored(items=[], marker=Marker(7, now_us, closed_us=now_us)))
    changelog = Changelog()
    runtime.table.changelog_topic = changelog  # type: ignore[assignment]
    await runtime.flush()
    await runtime.flush()
    assert changelog.stored == []
