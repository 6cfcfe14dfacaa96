"""Metric worker processes for the suite: started, made ready, measured and always stopped.

Workers are the production command (``python -m app worker <agent>``) run through the test
harness (:class:`testkit.workers.Workers`), which tracks every process by PID and kills
whatever is still running when its context ends — a benchmark that fails half-way leaves
nothing behind.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import BucketNotFoundError, KeyNotFoundError

from bridges.naming import Naming
from testkit.group import read_group
from testkit.workers import WorkerProcess, Workers, poll_until

__all__ = [
    "caught_up",
    "log_time",
    "metric_env",
    "peak_rss_mb",
    "rss_mb",
    "spawn_metric_workers",
    "wait_owned",
    "wait_ready",
]

_STAMP = re.compile(r"^\[?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})", re.MULTILINE)


def metric_env(url: str, data_dir: Path, *, partitions: int, window: int, grace: int, session_timeout: float) -> dict[str, str]:
    """The environment of ``python -m app worker`` for one stage."""
    return {
        "NATS_URL": url,
        "PARTITIONS": str(partitions),
        "METRICS_WINDOW_SECONDS": str(window),
        "METRICS_GRACE_SECONDS": str(grace),
        "SESSION_TIMEOUT": str(session_timeout),
        "DATA_DIR": str(data_dir),
        "LOG_LEVEL": "info",
    }


async def wait_ready(workers: Iterable[WorkerProcess], *, timeout: float = 90.0) -> None:
    await asyncio.gather(*(w.wait_for_log(r"Worker ready", timeout=timeout) for w in workers))


async def wait_owned(
    url: str, group: str, topic: str, partitions: int, members: int, *, timeout: float = 90.0
) -> None:
    """Until ``members`` members share every partition of ``topic`` in ``group``, each holding some."""

    async def settled() -> bool:
        state = await read_group(url, group)
        holders = [m for m in state.members if state.partitions_of(m, topic)]
        return len(holders) == members and state.fully_owned(topic, partitions)

    await poll_until(settled, timeout=timeout, interval=0.1, what=f"{members} members of {group} to hold {topic}")


async def caught_up(client: Client, group: str, topic: str, partitions: int) -> bool:
    """Whether ``group`` has committed every message of ``topic`` stored so far; False also
    when the server does not answer in time (busy with the stage's own writes: asked again at
    the next poll, the poll's deadline bounding the whole)."""
    try:
        return await _caught_up(client, group, topic, partitions)
    except NatsTimeoutError:
        return False


async def _caught_up(client: Client, group: str, topic: str, partitions: int) -> bool:
    js = client.jetstream()
    naming = Naming()
    try:
        kv = await js.key_value(naming.offsets_bucket)
    except BucketNotFoundError:
        return False
    for partition in range(partitions):
        last = (await js.stream_info(naming.stream(topic, partition))).state.last_seq
        try:
            entry = await kv.get(naming.offset_key(group, topic, partition))
        except KeyNotFoundError:
            if last:
                return False
            continue
        committed = json.loads(entry.value or b"{}").get("offset") or 1
        if committed <= last:
            return False
    return True


def rss_mb(pid: int) -> float:
    return _status_kb(pid, "VmRSS") / 1024


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size so far (``VmHWM``)."""
    return _status_kb(pid, "VmHWM") / 1024


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(f"/proc/{pid}/status has no {field}")


def log_time(worker: WorkerProcess, pattern: str, *, after: float) -> float | None:
    """Epoch time of the first line matching ``pattern`` logged at or after ``after``.

    Log lines carry local time to the millisecond (``2024-05-01 10:00:00,123``).
    """
    regex = re.compile(pattern)
    for line in worker.log().splitlines():
        match = _STAMP.match(line)
        if match is None or regex.search(line) is None:
            continue
        at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if at >= after - 0.001:
            return at
    return None


def spawn_metric_workers(pool: Workers, agents: Iterable[str], processes: int) -> list[WorkerProcess]:
    """``processes`` workers of each agent, named ``<agent>-<n>``."""
    return [
        pool.spawn([sys.executable, "-m", "app", "worker", agent], name=f"{agent}-{n}")
        for agent in agents
        for n in range(1, processes + 1)
    ]
