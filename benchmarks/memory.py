"""Memory: a metric worker's resident set at 1k, 10k and 100k open windows.

One engagement worker (its key is the student, so one event of a new student opens one window)
runs with a grace of a day, so nothing closes while windows pile up. Students are added in
steps; after each step, once the worker has committed every event (its state flushed to the
changelog), its current and peak RSS are read from ``/proc``. The slope between steps is what an
open window costs: state, its changelog bookkeeping and faust's table around it.

Time. The events are live: dated at the start of the stage and published without ``Faust-Ts``
(as HTTP ingest stores them), so each one's arrival is when JetStream stores it, seconds after
it occurred and a day before its window's end + grace. None is late and no window closes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from nats.aio.client import Client

from benchmarks.dataset import Message, declare_topic, publish
from benchmarks.workers import caught_up, metric_env, peak_rss_mb, rss_mb, spawn_metric_workers, wait_ready
from bridges.transport.session import partition_for_key
from contract.names import EVENTS_TOPIC
from testkit.workers import Workers, poll_until

__all__ = ["MemoryPoint", "run_memory"]

_AGENT = "engagement"


@dataclass(frozen=True)
class MemoryPoint:
    windows: int
    rss_mb: float
    peak_mb: float


async def run_memory(
    url: str, client: Client, *, base_dir: Path, partitions: int, levels: Sequence[int], session_timeout: float,
) -> tuple[MemoryPoint, list[MemoryPoint]]:
    """The idle worker's memory, and its memory at each number of open windows in ``levels``."""
    await declare_topic(client, partitions)
    env = metric_env(url, base_dir / "data", partitions=partitions, window=60, grace=86_400,
                     session_timeout=session_timeout)
    at = datetime.fromtimestamp(time.time(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with Workers(base_dir / "logs", env) as pool:
        (worker,) = spawn_metric_workers(pool, [_AGENT], 1)
        await wait_ready([worker])
        idle = MemoryPoint(0, rss_mb(worker.pid), peak_rss_mb(worker.pid))
        points = []
        opened = 0
        for level in levels:
            await publish(client, [_event(n, at, partitions) for n in range(opened, level)])
            opened = level
            await poll_until(
                lambda: caught_up(client, _AGENT, EVENTS_TOPIC, partitions),
                timeout=300, interval=0.2, what=f"{level} events committed",
            )
            points.append(MemoryPoint(level, rss_mb(worker.pid), peak_rss_mb(worker.pid)))
    return idle, points


def _event(n: int, occurred_at: str, partitions: int) -> Message:
    student = f"m{n}"
    payload = (
        f'{{"event_id":"mem-{n}","student_id":"{student}","type":"interaction","name":"answer_submitted",'
        f'"occurred_at":"{occurred_at}","data":{{"correct":true}}}}'
    ).encode()
    key = student.encode()
    return Message(partition_for_key(key, partitions), key, payload, f"mem-{n}")
