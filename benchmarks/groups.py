"""Consumer groups (issue 3): one agent on 1 and 2 processes, failover, and table recovery.

All on :mod:`benchmarks.table_app` (a faust ``Table`` counting per key), run by faust's own CLI:

1. **Scaling.** One worker, then two, each time over fresh keys; a message is processed when its
   key's changelog record is stored (every key is new, so records = messages). The two keep a
   standby replica of each other's table; a second group without standbys is timed on the
   backlog it reads at step 3.
2. **Failover.** With two workers holding half the partitions each, one is stopped (SIGTERM) or
   killed (SIGKILL); the time until the group's KV shows the survivor holding every partition
   is the failover. A new second worker is started and the split awaited before the next round.
3. **Recovery.** The table is filled to ``keys`` keys, one worker is killed, and the time until
   the survivor logs "Worker ready" again (partitions assigned *and* the table recovered) is the
   takeover; faust's own recovery tables say how many changelog records it replayed. Done twice:
   in a group with a standby replica (the survivor already holds a copy) and in one without.

Time plays no part here: the table app counts per key with a plain faust ``Table`` (no windows,
no watermark, no arrival clock), so it reads a backlog stored before it started and keys
published while it runs alike. Keys are published without ``Faust-Ts``, as HTTP ingest stores
events (before arrival time they carried the publish time, which this app never reads).
"""

from __future__ import annotations

import asyncio
import signal
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from nats.aio.client import Client
from nats.js.errors import NotFoundError

from benchmarks.dataset import Message, declare_topic, publish
from benchmarks.workers import log_time, wait_owned
from bridges.naming import Naming
from bridges.transport.session import partition_for_key
from testkit.faust_logs import replayed_records
from testkit.group import read_group
from testkit.workers import WorkerProcess, Workers, poll_until

__all__ = ["GroupResult", "Takeover", "run_groups"]

APP = "benchmarks.table_app"
TOPIC = "bench-keys"
#: seconds a standby is given to read the last changelog records before the kill
_STANDBY_CATCH_UP = 1.0


@dataclass(frozen=True)
class Takeover:
    keys: int
    #: SIGKILL -> the survivor ready with the table recovered
    seconds: float
    #: changelog records the survivor read to take over
    replayed: int


@dataclass(frozen=True)
class GroupResult:
    one_process: float
    #: two processes, each also keeping a standby replica of the other's table partitions
    two_processes: float
    two_without_standby: float
    after_sigterm: list[float]
    after_sigkill: list[float]
    with_standby: Takeover
    without_standby: Takeover
    session_timeout: float

    @property
    def sigterm_median(self) -> float:
        return statistics.median(self.after_sigterm)

    @property
    def sigkill_median(self) -> float:
        return statistics.median(self.after_sigkill)


async def run_groups(
    url: str, client: Client, *, base_dir: Path, partitions: int, batch: int, rounds: int, keys: int,
    session_timeout: float,
) -> GroupResult:
    """See the module docstring; ``batch`` keys per scaling run, ``rounds`` failovers of each kind."""
    await declare_topic(client, partitions, TOPIC)
    group = _Group(url, client, base_dir, "bench-table", partitions, session_timeout, standbys=1)
    with group.pool:
        first = group.start("w1")
        await first.wait_for_log(r"Worker ready", timeout=60)
        await wait_owned(url, group.app_id, TOPIC, partitions, 1)
        one = batch / await group.load(0, batch)
        second = await group.add("w2")
        two = batch / await group.load(batch, batch)
        after_sigterm, after_sigkill = [], []
        for n in range(rounds):
            after_sigterm.append(await group.failover(first, second, signal.SIGTERM))
            second = await group.add(f"w2-t{n}")
        for n in range(rounds):
            after_sigkill.append(await group.failover(first, second, signal.SIGKILL))
            second = await group.add(f"w2-k{n}")
        await group.load(2 * batch, keys - 2 * batch)
        await asyncio.sleep(_STANDBY_CATCH_UP)
        with_standby = await group.takeover(first, second, keys)
    cold = _Group(url, client, base_dir, "bench-table-cold", partitions, session_timeout, standbys=0)
    with cold.pool:
        first, second = cold.start("c1"), cold.start("c2")
        await wait_owned(url, cold.app_id, TOPIC, partitions, 2)
        # The topic already holds every key: timed from when both workers hold their partitions.
        started, before = time.perf_counter(), await cold.stored()
        await cold.processed(keys)
        two_without_standby = (keys - before) / (time.perf_counter() - started)
        without_standby = await cold.takeover(first, second, keys)
    return GroupResult(
        one, two, two_without_standby, after_sigterm, after_sigkill, with_standby, without_standby, session_timeout
    )


class _Group:
    """The workers of one group of the table app, and what is measured on them."""

    def __init__(
        self, url: str, client: Client, base_dir: Path, app_id: str, partitions: int, session_timeout: float,
        *, standbys: int,
    ) -> None:
        self.url = url
        self.client = client
        self.app_id = app_id
        self.partitions = partitions
        env = {
            "BROKER": f"{url}?session_timeout={session_timeout}",
            "APP_ID": app_id,
            "PARTITIONS": str(partitions),
            "STANDBYS": str(standbys),
        }
        self.pool = Workers(base_dir / app_id, env)
        self.changelog = f"{app_id}-totals-changelog"

    def start(self, name: str) -> WorkerProcess:
        return self.pool.spawn([sys.executable, "-m", "faust", "-A", APP, "worker", "-l", "info", "--without-web"], name=name)

    async def add(self, name: str) -> WorkerProcess:
        """Start a second worker and wait until the two share the partitions."""
        worker = self.start(name)
        await worker.wait_for_log(r"Worker ready", timeout=60)
        await wait_owned(self.url, self.app_id, TOPIC, self.partitions, 2)
        return worker

    async def load(self, first: int, count: int) -> float:
        """Publish keys ``first``.. ``first + count``; seconds until each one's record is stored."""
        started = time.perf_counter()
        await publish(self.client, [_message(n, self.partitions) for n in range(first, first + count)], topic=TOPIC)
        await self.processed(first + count)
        return time.perf_counter() - started

    async def processed(self, keys: int) -> None:
        async def done() -> bool:
            return await self.stored() >= keys

        await poll_until(done, timeout=300, interval=0.05, what=f"{keys} keys in {self.changelog}")

    async def stored(self) -> int:
        """Keys in the table's changelog (each key is written once: one per message processed)."""
        js = self.client.jetstream()
        naming = Naming()
        total = 0
        for partition in range(self.partitions):
            try:
                messages = (await js.stream_info(naming.stream(self.changelog, partition))).state.messages
            except NotFoundError:
                continue  # not created yet
            total += max(0, messages - 1)  # every subject keeps one message; one is the fence
        return total

    async def failover(self, survivor: WorkerProcess, victim: WorkerProcess, sig: signal.Signals) -> float:
        """Seconds from signalling ``victim`` until ``survivor`` holds every partition."""
        started = time.monotonic()
        victim.signal(sig)
        await self._held_by(survivor, timeout=60)
        elapsed = time.monotonic() - started
        await victim.wait_exit(30)
        return elapsed

    async def _held_by(self, survivor: WorkerProcess, *, timeout: float) -> None:
        async def alone() -> bool:
            state = await read_group(self.url, self.app_id)
            mine = [m for m, record in state.members.items() if record.pid == survivor.pid]
            return len(mine) == 1 and state.fully_owned(TOPIC, self.partitions, by=set(mine))

        await poll_until(alone, timeout=timeout, interval=0.02, what=f"{survivor.name} to hold every partition")

    async def takeover(self, victim: WorkerProcess, survivor: WorkerProcess, keys: int) -> Takeover:
        """Kill ``victim``; seconds until ``survivor`` is ready again, and records it replayed."""
        before = survivor.log_count(r"Worker ready")
        killed_at = time.time()
        victim.signal(signal.SIGKILL)
        await survivor.wait_for_log(r"Worker ready", timeout=120, count=before + 1)
        ready_at = log_time(survivor, r"Worker ready", after=killed_at)
        assert ready_at is not None
        return Takeover(keys, ready_at - killed_at, replayed_records(survivor.log(), self.changelog))


def _message(n: int, partitions: int) -> Message:
    key = f"key-{n}".encode()
    return Message(partition_for_key(key, partitions), key, b"1", f"bench-key-{n}")
