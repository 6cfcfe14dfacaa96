"""METRICS_UPDATE_SECONDS end to end: a real engagement worker writes the current value of an open
window to KV, ``"final": false``, until the final value, equal to the oracle, replaces it for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from bridges.public.results_client import ResultsClient
from bridges.public.streams import PublicStreams
from bridges.server import NatsServer
from contract.results import parse_result
from contract.typed.engagement import EngagementResult
from testkit.oracle import expected_results
from testkit.pipeline import ingest, metric_env, start_metric_worker, values_match
from testkit.streams import nats_client
from testkit.workers import Workers, poll_until

pytestmark = pytest.mark.integration

WINDOW, GRACE, PARTITIONS = 12, 1, 2
UPDATE_SECONDS = 0.2
# The window closes about WINDOW + GRACE - 1 s after the worker takes the first batch (its latest
# event is 1 s into the window, and the watermark then advances with the wall clock). Before that
# the test must see a first provisional value and still ingest the second batch: it waits for the
# value at most FIRST_VALUE_WAIT, which leaves the second batch 4 s even on a loaded machine.
FIRST_VALUE_WAIT = WINDOW + GRACE - 1 - 4


def answer(event_id: str, student: str, at: float, *, correct: bool) -> dict[str, Any]:
    moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{round(at % 1 * 1000):03d}Z"
    return {
        "event_id": event_id, "student_id": student, "type": "interaction", "name": "answer_submitted",
        "occurred_at": moment, "activity_id": "quiz-1", "data": {"correct": correct},
    }


def provisional(expected: dict[str, Any]) -> dict[str, Any]:
    return {**expected, "final": False}


@pytest.fixture
async def client(nats_server: NatsServer) -> AsyncIterator[Client]:
    async with nats_client(nats_server.url) as connection:
        yield connection


async def test_an_open_window_shows_its_current_value_until_the_final_one_replaces_it(
    nats_server: NatsServer, client: Client, tmp_path: Path
) -> None:
    env = metric_env(nats_server.url, tmp_path / "data", window=WINDOW, grace=GRACE, partitions=PARTITIONS)
    kv: KeyValue = await PublicStreams().ensure_metrics_bucket(client.jetstream())
    seen: list[EngagementResult] = []

    async def watch(results: AsyncIterator[Any]) -> None:
        async for result in results:
            assert isinstance(result, EngagementResult)
            seen.append(result)

    with Workers(tmp_path / "logs", {**env, "METRICS_UPDATE_SECONDS": str(UPDATE_SECONDS)}) as pool:
        worker = start_metric_worker(pool, "engagement")
        await worker.wait_ready(timeout=60)
        # strict: a value the typed models refuse fails the watch, and so the test.
        typed = ResultsClient(client, parse_result, strict=True)
        async with typed.watch(metric="engagement", include_existing=False) as results:
            watcher = asyncio.create_task(watch(results))
            try:
                # The next window, so that it is open for about WINDOW + GRACE seconds from now
                # whatever the time: its events are a few seconds ahead of the wall clock.
                start = (math.floor(time.time() / WINDOW) + 1) * WINDOW
                key = f"engagement.s-1.{start}"
                first = [answer("a1", "s-1", start + 0.5, correct=True), answer("a2", "s-1", start + 1, correct=False)]
                second = [answer("a3", "s-1", start + 2, correct=True), answer("a4", "s-1", start + 3, correct=True)]
                events = first + second
                # The oracle of each prefix of the events, in the order one partition applies them.
                prefixes = [provisional(expected_results(events[:n], WINDOW)[key]) for n in range(1, len(events) + 1)]
                final = expected_results(events, WINDOW)[key]

                await ingest(nats_server.url, first, partitions=PARTITIONS, now=time.time())

                async def stored() -> dict[str, Any] | None:
                    with contextlib.suppress(KeyNotFoundError):
                        return json.loads((await kv.get(key)).value)
                    return None

                value = await poll_until(stored, timeout=FIRST_VALUE_WAIT, interval=0.05, what=f"a value under {key}")
                assert value["final"] is False, "the window should still be open: no final value yet"
                assert any(values_match(value, p) for p in prefixes[:2]), value

                await ingest(nats_server.url, second, partitions=PARTITIONS, now=time.time())

                async def final_stored() -> dict[str, Any] | None:
                    current = await stored()
                    return current if current is not None and current["final"] else None

                value = await poll_until(final_stored, timeout=40, interval=0.1, what=f"the final value of {key}")
                assert values_match(value, final), (value, final)
                entry = await kv.get(key)

                # Proof that the worker wrote provisional values after that: a window of another
                # student, opened once the first was final, shows its current value.
                later = start + WINDOW + 0.5
                late_event = answer("b1", "s-2", later, correct=True)
                await ingest(nats_server.url, [late_event], partitions=PARTITIONS, now=time.time())
                later_key = f"engagement.s-2.{start + WINDOW}"
                await poll_until(
                    lambda: any(r.kv_key == later_key and not r.final for r in seen),
                    timeout=10, what=f"a provisional value of {later_key} on the watch",
                )
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        assert worker.alive(), worker.log()[-3000:]
        log = worker.log()

    # What the watch saw under the key: provisional values, each the oracle of the events so far,
    # then the final value, and nothing after it.
    values = [json.loads(r.to_json_bytes()) for r in seen if r.kv_key == key]
    assert values and values[-1]["final"] is True and values_match(values[-1], final)
    assert [v["final"] for v in values].count(True) == 1
    assert values[0]["final"] is False
    for before in values[:-1]:
        assert any(values_match(before, p) for p in prefixes), before
    counts = [v["events"] for v in values]
    assert counts == sorted(counts), counts
    # And the key's last entry in the bucket is that same final value. (A direct get: kv.history
    # watches through a consumer whose first answer can time out on a loaded machine.)
    last = await kv.get(key)
    assert last.revision == entry.revision
    assert values_match(json.loads(last.value or b"null"), final)
    assert "already final with another value" not in log
    assert "provisional values failed" not in log
