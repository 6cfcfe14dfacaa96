"""What a windowed runtime tells /metrics: its counts, open windows and watermark delay read at
scrape time, each closed window's latency, and final results stored or refused."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agents import progression
from tables import BrokenError, Promise

from .harness import GRACE, WINDOW, ScriptedClock, windowed_runtime


class Finals:
    """A writer that stores finals in memory; the first ``failures`` writes fail once each."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.finals: dict[str, Any] = {}
        self.dead: list[str] = []

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def wait_writable(self, timeout: float) -> bool:
        return True

    async def write_result(self, kv_key: str, subject: str, payload: bytes) -> Awaitable[None]:
        if self.failures:
            self.failures -= 1
            return Retry(lambda: self._retried(kv_key, payload))
        self.finals[kv_key] = json.loads(payload)
        return _done()

    async def _retried(self, kv_key: str, payload: bytes) -> None:
        """Fails when first awaited, stores when awaited again (as the real writer's retry does)."""
        if kv_key not in self.dead:
            self.dead.append(kv_key)
            raise BrokenError("not stored yet")
        self.finals[kv_key] = json.loads(payload)

    async def write_provisional(self, kv_key: str, payload: bytes) -> Awaitable[None]:
        return _done()

    async def dead_letter(self, subject: str, payload: bytes, *, reason: str, msg_id: str) -> Awaitable[None]:
        return _done()


class Retry:
    """An awaitable that runs a fresh coroutine each time it is awaited."""

    def __init__(self, make: Any) -> None:
        self._make = make

    def __await__(self) -> Any:
        return self._make().__await__()


def _done() -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


def answer(event_id: str, at: float, student: str = "s1") -> bytes:
    return json.dumps({
        "event_id": event_id, "student_id": student, "type": "interaction", "name": "answer",
        "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)), "data": {"correct": True},
    }).encode()


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def test_counts_open_windows_watermark_delay_and_close_latency_are_read_at_scrape_time() -> None:
    registry = CollectorRegistry()
    clock = ScriptedClock()
    runtime = windowed_runtime(Finals(), clock=clock, registry=registry)
    old = (int(time.time()) // WINDOW - 3) * WINDOW + 1  # a window that ended long ago
    now = time.time()
    await runtime.add(0, 1, answer("e1", old), old + 1)
    await runtime.add(0, 2, answer("e2", now), now)
    await runtime.add(0, 3, b"{not json", now)
    metric = "engagement"
    assert sample(registry, "learning_streams_windows_open", metric=metric, partition="0") == 2
    assert sample(registry, "learning_streams_window_events_total", metric=metric, outcome="counted") == 2
    assert sample(registry, "learning_streams_window_events_total", metric=metric, outcome="invalid") == 1
    assert sample(registry, "learning_streams_watermark_delay_seconds", metric=metric, partition="0") is None

    clock.promises[0] = Promise(3, time.time())
    await runtime.tick()
    assert sample(registry, "learning_streams_windows_closed_total", metric=metric) == 1
    assert sample(registry, "learning_streams_windows_open", metric=metric, partition="0") == 1
    delay = sample(registry, "learning_streams_watermark_delay_seconds", metric=metric, partition="0")
    assert delay is not None and 0 <= delay < 5
    # The old window was due (end + grace) about two windows before it closed.
    assert sample(registry, "learning_streams_window_close_latency_seconds_count", metric=metric) == 1
    latency = sample(registry, "learning_streams_window_close_latency_seconds_sum", metric=metric)
    assert latency is not None and 2 * WINDOW - GRACE - 2 < latency < 3 * WINDOW
    assert sample(registry, "learning_streams_partitions_active", metric=metric) == 1

    # What Prometheus reads is the text format; every family parses.
    names = {family.name for family in text_string_to_metric_families(generate_latest(registry).decode())}
    assert {"learning_streams_window_events", "learning_streams_window_close_latency_seconds"} <= names


async def test_finals_are_counted_written_once_stored_and_refused_per_failed_attempt() -> None:
    registry = CollectorRegistry()
    clock = ScriptedClock()
    runtime = windowed_runtime(Finals(failures=1), clock=clock, registry=registry)
    old = (int(time.time()) // WINDOW - 3) * WINDOW + 1
    await runtime.add(0, 1, answer("e1", old), old + 1)
    clock.promises[0] = Promise(1, time.time())
    await runtime.tick()
    # Step 2 of the flush, which counts them: the test app has no broker for the changelog steps.
    with pytest.raises(BrokenError):
        await runtime._store_pending()
    assert sample(registry, "learning_streams_finals_total", metric="engagement", result="refused") == 1
    assert sample(registry, "learning_streams_finals_total", metric="engagement", result="written") == 0
    await runtime._store_pending()  # the write is tried again, and stored
    assert sample(registry, "learning_streams_finals_total", metric="engagement", result="written") == 1


async def test_the_runtimes_of_several_metrics_share_one_registry() -> None:
    registry = CollectorRegistry()
    windowed_runtime(Finals(), registry=registry)
    windowed_runtime(Finals(), registry=registry, definition=progression.define(WINDOW, GRACE))
    for metric in ("engagement", "progression"):
        assert sample(registry, "learning_streams_partitions_active", metric=metric) == 1
