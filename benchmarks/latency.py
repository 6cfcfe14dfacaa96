"""Close latency: an event published live -> its window's final result readable in KV.

The three metric workers run with short windows; events are published at a steady rate with
``occurred_at`` = the moment they are published, so event time and wall time agree and a window
is due at wall time ``end + grace``. Its latency is when its result was written minus that
moment: what the pipeline adds to the window's own wait (delivery, the watermark catching up,
the closer waking, the KV write). Every window of every metric counts once.

Time. The events carry no ``Faust-Ts``, as HTTP ingest stores them: each one's arrival is when
JetStream stored it, just after it occurred, so none is late. A window closes once a reading of
the streams promises that everything still to come arrived after its end + grace and the worker
has processed up to that reading: the arrival clock is read every 0.25 s and its promises are
0.25 s behind the server's clock (``bridges/public/arrival_clock.py``), so a caught-up worker closes a
window about 0.25-0.5 s after its end + grace. Before arrival time the watermark was the events'
own time carried forward by the worker's clock, and windows closed within about 10 ms; the
figure is the same measure (result in KV minus end + grace) against the same target (p99 < 1 s),
and now includes the clock's reading interval and tolerance.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nats.aio.client import Client

from benchmarks.dataset import ResultWatch, declare_topic
from benchmarks.workers import metric_env, spawn_metric_workers, wait_ready
from bridges.naming import Naming
from bridges.transport.envelope import encode_headers
from bridges.transport.publisher import PipelinedPublisher
from bridges.transport.session import partition_for_key
from contract.names import EVENTS_TOPIC
from testkit.pipeline import METRIC_AGENTS
from testkit.workers import Workers

__all__ = ["run_latency"]

#: what each published event is, in turn: every metric gets windows
_KINDS = (
    ("interaction", "answer_submitted", {"correct": True}),
    ("engagement", "heartbeat", {"seconds": 15}),
    ("game", "level_completed", {"level": 1, "score": 10, "duration_ms": 900}),
    ("game", "game_finished", {"outcome": "win", "score": 10, "duration_ms": 900}),
)
_TICK = 0.02


async def run_latency(
    url: str, client: Client, *, base_dir: Path, partitions: int, window: int, grace: int,
    rate: float, seconds: float, students: int, session_timeout: float,
) -> list[float]:
    """Seconds beyond ``end + grace`` at which each window's result was written."""
    await declare_topic(client, partitions)
    env = metric_env(url, base_dir / "data", partitions=partitions, window=window, grace=grace,
                     session_timeout=session_timeout)
    with Workers(base_dir / "logs", env) as pool:
        await wait_ready(spawn_metric_workers(pool, METRIC_AGENTS, 1))
        async with ResultWatch(client) as watch, PipelinedPublisher(client) as publisher:
            due = await _publish_live(publisher, partitions, window, grace, rate, seconds, students)
            await watch.wait_for(due.keys(), timeout=window + grace + 30)
            return [watch.seen[key] - at for key, at in due.items()]


async def _publish_live(
    publisher: PipelinedPublisher, partitions: int, window: int, grace: int, rate: float, seconds: float,
    students: int,
) -> dict[str, float]:
    """Publish for ``seconds``; returns each window's KV key -> wall time it is due."""
    naming = Naming()
    subjects = [naming.subject(EVENTS_TOPIC, p) for p in range(partitions)]
    due: dict[str, float] = {}
    pending: list[asyncio.Future[Any]] = []
    sent = 0
    begin = time.monotonic()
    while (elapsed := time.monotonic() - begin) < seconds:
        # Paced by the clock, so the rate holds whatever one round of publishing costs.
        while sent < int(rate * elapsed):
            pending.append(await _publish_one(publisher, subjects, sent, students, window, grace, due))
            sent += 1
        await asyncio.sleep(_TICK)
    await asyncio.gather(*pending)
    return due


async def _publish_one(
    publisher: PipelinedPublisher, subjects: list[str], n: int, students: int, window: int, grace: int,
    due: dict[str, float],
) -> asyncio.Future[Any]:
    """Publish event ``n`` now and note when the windows it lands in are due."""
    now_ms = int(time.time() * 1000)
    student = f"s{n % students}"
    kind, name, data = _KINDS[n % len(_KINDS)]
    event_id = f"live-{n}"
    event = {
        "event_id": event_id, "student_id": student, "type": kind, "name": name, "game_id": "g-live",
        "occurred_at": datetime.fromtimestamp(now_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "data": data,
    }
    start = now_ms // 1000 // window * window
    closes = float(start + window + grace)
    due[f"engagement.{student}.{start}"] = closes
    if name == "level_completed":
        due[f"progression.{student}.{start}"] = closes
    elif name == "game_finished":
        due[f"outcomes.{student}.g-live.{start}"] = closes
    key = student.encode()
    # No Faust-Ts: the time JetStream stores it is its arrival, as for HTTP ingest.
    headers = encode_headers(msg_id=event_id, key=key, value_is_null=False, timestamp=None, headers=None)
    return await publisher.publish(subjects[partition_for_key(key, len(subjects))], json.dumps(event).encode(), headers)
