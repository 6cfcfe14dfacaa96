"""A worker joining and one leaving a running group: what is processed twice, and the pauses.

On :mod:`benchmarks.table_app` (a faust ``Table`` counting per key), run by faust's own CLI, with
a stream of messages, each with a key of its own, published at a steady rate throughout:

1. one worker holds every partition;
2. a second worker **joins** (planned: the group rebalances, partitions move to it);
3. that worker **leaves** on SIGTERM (planned: it drains, commits and gives its partitions back).

Counted afterwards from the table's changelog, which holds each key's count with the time the
server stored it:

- **processed twice**: the counts summed over every key, less the messages sent. A message
  processed again after a rebalance adds to its key twice (the table is at-least-once);
- **pause per partition**: the longest gap between two consecutive changelog records of a
  partition from a rebalance's start to the next one's (or the end), up to its first record
  after that, for the partitions that stayed with their worker and for those that moved. At the
  publishing rate, a partition normally sees a record every few milliseconds, so a gap is the
  time that partition did not flow;
- **steady gap**: the same longest gap over every partition during the steady flow before the
  join, when nothing rebalances: the hiccups of ordinary work (commits, flushes, the collector).
  A pause is reported as a ratio to it, so "a partition that stayed did not pause" reads as a
  ratio near 1, whatever the machine's load.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from nats.aio.client import Client
from nats.js.errors import NotFoundError

from benchmarks.dataset import Message, declare_topic, publish
from benchmarks.report import Row, Target
from benchmarks.storage import stored_messages
from benchmarks.workers import wait_owned
from bridges.naming import Naming
from bridges.transport.session import partition_for_key
from testkit.group import read_group
from testkit.workers import WorkerProcess, Workers

__all__ = ["RebalanceResult", "Step", "rebalance_rows", "rebalance_targets", "run_rebalance"]

APP = "benchmarks.table_app"
TOPIC = "bench-keys"
APP_ID = "bench-rebalance"
#: the store times' resolution in practice: a floor under the yardstick
_CLOCK = 0.001
#: how much longer than the steady flow's longest gap a kept partition may pause and still count
#: as "did not pause": a rebalance adds a drain and a commit, about one ordinary hiccup
STAYED_PAUSE_BOUND = 2.0


@dataclass(frozen=True)
class Step:
    """One rebalance: the longest pause of a partition that stayed, and of one that moved."""

    name: str
    stayed: float | None
    moved: float | None


@dataclass(frozen=True)
class RebalanceResult:
    sent: int
    processed_twice: int
    steps: list[Step]
    rate: float
    session_timeout: float
    #: the longest gap of any partition in the steady flow before the join (no rebalance)
    steady_gap: float

    def versus_steady(self, pause: float) -> float:
        """``pause`` as a multiple of the steady flow's longest gap."""
        return pause / max(self.steady_gap, _CLOCK)


async def run_rebalance(
    url: str, client: Client, *, base_dir: Path, partitions: int, rate: float, session_timeout: float,
    settle: float = 3.0,
) -> RebalanceResult:
    """See the module docstring; messages at ``rate`` per second throughout, and ``settle``
    seconds of steady flow before, between and after the two rebalances."""
    await declare_topic(client, partitions, TOPIC)
    env = {"BROKER": f"{url}?session_timeout={session_timeout}", "APP_ID": APP_ID,
           "PARTITIONS": str(partitions), "STANDBYS": "0"}
    argv = [sys.executable, "-m", "faust", "-A", APP, "worker", "-l", "info", "--without-web"]
    sent = 0
    stop = asyncio.Event()

    async def produce() -> None:
        nonlocal sent
        counter = itertools.count()
        tick = 0.05
        while not stop.is_set():
            started = time.monotonic()
            chunk = [_message(next(counter), partitions) for _ in range(max(1, round(rate * tick)))]
            await publish(client, chunk, topic=TOPIC)
            sent += len(chunk)
            await asyncio.sleep(max(0.0, tick - (time.monotonic() - started)))

    with Workers(base_dir / APP_ID, env) as pool:
        first = pool.spawn(argv, name="r1")
        await first.wait_for_log(r"Worker ready", timeout=60)
        await wait_owned(url, APP_ID, TOPIC, partitions, 1)
        producer = asyncio.create_task(produce())
        try:
            # The first records show up only once the producer's first chunk is through.
            steady_from = time.time() + min(1.0, settle / 2)
            await asyncio.sleep(settle)
            before = await _holdings(url, first)
            joined_at = time.time()
            second = pool.spawn(argv, name="r2")
            await wait_owned(url, APP_ID, TOPIC, partitions, 2)
            moved_on_join = before - await _holdings(url, first)
            await asyncio.sleep(settle)
            left_at = time.time()
            moved_on_leave = await _holdings(url, second)
            second.signal(signal.SIGTERM)
            await wait_owned(url, APP_ID, TOPIC, partitions, 1)
            await second.wait_exit(60)
            await asyncio.sleep(settle)
            ended_at = time.time()
        finally:
            stop.set()
            await producer
        counts, stamps = await _changelog(client, partitions, expected=sent)
    steps = [
        _step("join", stamps, (joined_at, left_at), moved_on_join, partitions),
        _step("leave", stamps, (left_at, ended_at), moved_on_leave, partitions),
    ]
    steady = max((_longest_gap(stamps, p, (steady_from, joined_at)) for p in range(partitions)), default=0.0)
    return RebalanceResult(sent, sum(counts) - sent, steps, rate, session_timeout, steady)


async def _holdings(url: str, worker: WorkerProcess) -> set[int]:
    state = await read_group(url, APP_ID)
    members = [m for m, record in state.members.items() if record.pid == worker.pid]
    return state.partitions_of(members[0], TOPIC) if members else set()


def _step(
    name: str, stamps: dict[int, list[float]], during: tuple[float, float], moved: set[int], partitions: int
) -> Step:
    """The longest pauses from the rebalance's start to the next one's (``during``)."""
    stayed = [_longest_gap(stamps, p, during) for p in range(partitions) if p not in moved]
    went = [_longest_gap(stamps, p, during) for p in moved]
    return Step(name, max(stayed) if stayed else None, max(went) if went else None)


def _longest_gap(stamps: dict[int, list[float]], partition: int, during: tuple[float, float]) -> float:
    """The longest gap between ``partition``'s records within ``during``, up to its first
    record after it (or its end): a partition that resumes only after the window has paused at
    least that long."""
    start, end = during
    stamped = stamps.get(partition, [])
    times = [t for t in stamped if start <= t <= end]
    times.append(next((t for t in stamped if t > end), end))
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


async def _changelog(client: Client, partitions: int, *, expected: int) -> tuple[list[int], dict[int, list[float]]]:
    """Each key's count (its newest record) and each partition's record times, once the
    changelog counts every message sent."""
    js = client.jetstream()
    naming = Naming()
    changelog = f"{APP_ID}-totals-changelog"
    deadline = time.monotonic() + 120
    while True:
        newest: dict[str, int] = {}
        stamps: dict[int, list[float]] = {}
        for partition in range(partitions):
            stream = naming.stream(changelog, partition)
            try:
                await js.stream_info(stream)
            except NotFoundError:
                continue  # no record yet
            # The data subjects only: the fence is not a record.
            for msg in await stored_messages(js, stream, naming.data_filter(changelog, partition, True)):
                newest[msg.subject] = int(msg.data)
                stamps.setdefault(partition, []).append(msg.metadata.timestamp.timestamp())
        if sum(newest.values()) >= expected or time.monotonic() > deadline:
            return list(newest.values()), {p: sorted(ts) for p, ts in stamps.items()}
        await asyncio.sleep(0.5)


def _message(n: int, partitions: int) -> Message:
    key = f"rebalance-{n}".encode()
    return Message(partition_for_key(key, partitions), key, b"1", f"bench-rebalance-{n}")


def rebalance_rows(result: RebalanceResult, stage: str) -> list[Row]:
    """The stage's rows: messages processed twice, the steady flow's longest gap, and each
    rebalance's longest pauses as ratios to that gap."""
    steady = result.steady_gap
    rows = [
        Row("rebalance-twice", stage, "messages processed twice, a join and a leave", result.processed_twice,
            "events", result.processed_twice / result.sent, "messages sent",
            f"{result.sent:,} messages at {result.rate:,.0f}/s, each with a key of its own, through a join "
            f"and a SIGTERM leave"),
        Row("rebalance-steady", stage, "longest gap of a partition, steady flow before the join", steady, "s",
            steady / result.session_timeout, "session timeout",
            "ordinary hiccups (commits, flushes, the collector) with nothing rebalancing: the pauses' yardstick"),
    ]
    for step in result.steps:
        for which, pause in (("stayed", step.stayed), ("moved", step.moved)):
            if pause is not None:
                rows.append(Row(
                    f"rebalance-{step.name}-{which}", stage,
                    f"longest pause on {step.name}, a partition that {which}", pause, "s",
                    result.versus_steady(pause), "steady flow's longest gap",
                    "the longest gap between two changelog records of such a partition around the rebalance",
                ))
    return rows


def rebalance_targets(result: RebalanceResult) -> list[Target]:
    """Issue 16's: nothing processed twice, and partitions that stay keep flowing."""
    targets = [Target("rebalance: messages processed twice (join + leave)", result.processed_twice, "0",
                      result.processed_twice == 0)]
    for step in result.steps:
        if step.stayed is not None:
            ratio = result.versus_steady(step.stayed)
            targets.append(Target(
                f"rebalance: {step.name}, a partition that stayed / steady flow's longest gap", ratio,
                f"~1 (< {STAYED_PAUSE_BOUND:g})", ratio < STAYED_PAUSE_BOUND,
            ))
    return targets
