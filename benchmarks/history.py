"""History: a worker's takeover after 10k, 100k (and more) windows opened and closed (issue 13).

For each level, on a fresh server: a backlog of that many events, each alone in its window (one
student per event and second), is stored before one engagement worker starts; the worker reads
it, every window opens and closes and its final is written, and the worker commits everything
and its changelog settles. Then it is killed with SIGKILL and a new worker started: recovery is
from the kill until the new worker has resumed every partition (its "resumes at offset" lines:
the changelog read, the state restored), and its RSS is read then. A changelog that kept every
window ever opened would make both grow with the level; the goal is that neither does.

Time. The backlog's events carry their arrivals (``Faust-Ts``, in batch records as ingest writes
them), half a second after they occurred, one second of history per ``STUDENTS`` events ending a
minute ago: windows close as the worker reads through the backlog, and its last ones by the
arrival clock once the backlog is read. The last second's windows close right after the backlog
is read, before most of them were ever flushed: at 10k (half a second of history) the changelog
hardly sees a window, at 100k and 1M nearly every window is stored and then deleted. Measured
on the code before issue 13 (one run, 2 cores): at 10k a takeover took 2.7 s and 66 MB, at 100k
10.1 s and 119 MB, its changelog holding 68,020 messages (33 MiB).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import NotFoundError

from benchmarks.dataset import Message, batched, declare_topic, publish
from benchmarks.workers import caught_up, log_time, metric_env, rss_mb
from bridges.naming import Naming
from bridges.transport.session import partition_for_key
from contract.names import EVENTS_TOPIC
from testkit.workers import WorkerProcess, Workers, poll_until

__all__ = ["HistoryPoint", "run_level"]

_AGENT = "engagement"
_CHANGELOG = f"{_AGENT}-{_AGENT}-windows-changelog"
#: students, hence windows, per second of history: enough that a worker takes longer to read a
#: second of the backlog than a commit interval, so windows are stored in the changelog before
#: they close (with fewer, most would open and close between two flushes and never be written)
STUDENTS = 20_000
#: events per record of the backlog. Small: a worker's readers buffer up to 2,048 records per
#: partition, and records of 100 events (30 KB) made the server cut a worker reading a
#: million-event backlog off as a slow consumer
_BATCH = 10
#: a settled changelog partition: markers, the watermark, the fence, and a few windows' leftovers
_SETTLED = 12


@dataclass(frozen=True)
class HistoryPoint:
    closed: int
    #: seconds from SIGKILL until the new worker resumed every partition
    recovery: float
    #: the new worker's resident set then, MB
    rss_mb: float
    #: messages and bytes in all changelog partitions before the kill
    changelog_messages: int
    changelog_bytes: int
    #: seconds the first worker took to read the backlog and close its windows
    processing: float


async def run_level(
    url: str, client: Client, base_dir: Path, *, partitions: int, closed: int, session_timeout: float
) -> HistoryPoint:
    """``closed`` windows opened and closed on the server at ``url``, then a takeover."""
    await declare_topic(client, partitions)
    await publish(client, batched(_backlog(closed, partitions), _BATCH))
    env = metric_env(url, base_dir / "data", partitions=partitions, window=1, grace=1,
                     session_timeout=session_timeout)
    with Workers(base_dir / "logs", env) as pool:
        first = _worker(pool, "first")
        started = time.monotonic()
        await first.wait_for_log(r"Worker ready", timeout=120)
        await poll_until(
            lambda: caught_up(client, _AGENT, EVENTS_TOPIC, partitions),
            timeout=1800, interval=0.5, what=f"{closed:,} events committed",
        )
        await poll_until(
            lambda: _settled(client, partitions), timeout=120, interval=0.5, what="the changelog to settle",
        )
        processing = time.monotonic() - started
        messages, size = await _changelog_size(client, partitions)
        killed_at = time.time()
        await first.kill()
        second = _worker(pool, "second")
        await second.wait_for_log(r"resumes at offset", timeout=120, count=partitions)
        resumed = [
            log_time(second, rf"partition {p} resumes at offset", after=killed_at) for p in range(partitions)
        ]
        assert all(at is not None for at in resumed), resumed
        recovery = max(at for at in resumed if at is not None) - killed_at
        rss = rss_mb(second.pid)
    return HistoryPoint(closed, recovery, rss, messages, size, processing)


def _worker(pool: Workers, name: str) -> WorkerProcess:
    return pool.spawn([sys.executable, "-m", "app", "worker", _AGENT], name=name)


def _backlog(closed: int, partitions: int) -> list[Message]:
    seconds = -(-closed // STUDENTS)
    start = int(time.time()) - seconds - 60
    out = []
    for n in range(closed):
        second, student = divmod(n, STUDENTS)
        at = start + second + 0.25
        occurred = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        key = f"h{student}".encode()
        event = {"event_id": f"hist-{n}", "student_id": f"h{student}", "type": "interaction",
                 "name": "answer_submitted", "occurred_at": occurred, "data": {"correct": True}}
        payload = json.dumps(event, separators=(",", ":")).encode()
        out.append(Message(partition_for_key(key, partitions), key, payload, f"hist-{n}", at + 0.5))
    return out


async def _changelog_size(client: Client, partitions: int) -> tuple[int, int]:
    js, naming = client.jetstream(), Naming()
    messages = size = 0
    for partition in range(partitions):
        try:
            state = (await js.stream_info(naming.stream(_CHANGELOG, partition))).state
        except NotFoundError:
            continue
        messages += state.messages
        size += state.bytes
    return messages, size


async def _settled(client: Client, partitions: int) -> bool:
    try:
        messages, _ = await _changelog_size(client, partitions)
    except NatsTimeoutError:  # the server busy compacting: asked again at the next poll
        return False
    return 0 < messages <= _SETTLED * partitions
