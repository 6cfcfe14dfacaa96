"""The learning events the suite pushes through every stage, and how results are watched.

Every throughput stage (ceiling, faust core, full pipeline) processes the same
:class:`Dataset`: realistic sessions from :func:`testkit.oracle.generate_sessions`, a day in the
past, time-ordered within each partition — so nothing is late and windows close as event time
moves on, exactly as a backlog is worked off. After the last event each partition gets two
*closers* (a ``level_completed`` and a ``game_finished``, so every metric's ``where`` lets them
move its watermark) far enough ahead in event time to close every real window. A stage is done
when the last of the oracle's expected results is in KV; the closers' own windows stay open and
are never counted.

Results are watched on ``$KV.metrics.>`` with a core subscription: the moment the server routes
a KV write is the moment it is readable (within microseconds), and no consumer has to be created
per stage. Keys are counted once, so a refused rewrite of a final window cannot count twice.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.errors import KeyNotFoundError

from bridges.naming import Naming
from bridges.public.streams import PublicStreams
from bridges.transport.envelope import encode_headers
from bridges.transport.publisher import PipelinedPublisher
from bridges.transport.session import partition_for_key
from bridges.transport.topics import TopicRegistry, TopicSpec
from contract.names import EVENTS_TOPIC, METRICS_BUCKET
from testkit.oracle import expected_results, generate_sessions
from testkit.pipeline import values_match

__all__ = [
    "Dataset",
    "Message",
    "ResultWatch",
    "declare_topic",
    "make_dataset",
    "publish",
    "verify_sample",
]

#: events per student and minute that generate_sessions produces (measured: about 4.8)
_EVENTS_PER_STUDENT_MINUTE = 4.5
_MINUTES = 30


class Message(NamedTuple):
    """One event as it is stored in the events topic."""

    partition: int
    key: bytes
    payload: bytes
    event_id: str


@dataclass(frozen=True)
class Dataset:
    """``events`` (time-ordered) plus per-partition ``closers``, and the oracle's results."""

    events: list[dict[str, Any]]
    closers: list[dict[str, Any]]
    partitions: int
    window: int
    grace: int
    expected: dict[str, dict[str, Any]] = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.events)

    def messages(self) -> list[Message]:
        """Events then closers, each in the partition its student's key maps to."""
        out = []
        for event in [*self.events, *self.closers]:
            key = event["student_id"].encode()
            payload = json.dumps(event, separators=(",", ":")).encode()
            out.append(Message(partition_for_key(key, self.partitions), key, payload, event["event_id"]))
        return out


def make_dataset(size: int, *, partitions: int, window: int, grace: int, seed: int = 1) -> Dataset:
    """``size`` events of a day ago, with closers and the expected results."""
    start = (int(time.time()) // 86_400 - 1) * 86_400
    students = max(10, round(size / (_EVENTS_PER_STUDENT_MINUTE * _MINUTES)))
    events: list[dict[str, Any]] = []
    while len(events) < size:
        events = generate_sessions(seed=seed, students=students, minutes=_MINUTES, start_epoch=start)
        students = students * 5 // 4 + 1
    events = events[:size]
    last = max(datetime.fromisoformat(e["occurred_at"]).timestamp() for e in events)
    return Dataset(
        events=events,
        closers=_closers(partitions, last + window + grace + 1),
        partitions=partitions,
        window=window,
        grace=grace,
        expected=expected_results(events, window_seconds=window),
    )


def _closers(partitions: int, at: float) -> list[dict[str, Any]]:
    occurred_at = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    students: dict[int, str] = {}
    candidate = 0
    while len(students) < partitions:
        name = f"closer{candidate}"
        students.setdefault(partition_for_key(name.encode(), partitions), name)
        candidate += 1
    out = []
    for partition, student in sorted(students.items()):
        common = {"student_id": student, "type": "game", "occurred_at": occurred_at, "game_id": "g-close"}
        out.append({**common, "event_id": f"closer-{partition}-l", "name": "level_completed",
                    "data": {"level": 0, "score": 0, "duration_ms": 0}})
        out.append({**common, "event_id": f"closer-{partition}-g", "name": "game_finished",
                    "data": {"outcome": "win", "score": 0, "duration_ms": 0}})
    return out


async def declare_topic(client: Client, partitions: int, topic: str = EVENTS_TOPIC) -> None:
    """Create a topic as a worker would (workers started later find it)."""
    registry = TopicRegistry(client.jetstream(), Naming())
    await registry.start()
    await registry.declare(TopicSpec(name=topic, partitions=partitions))


async def publish(client: Client, messages: Sequence[Message], *, topic: str = EVENTS_TOPIC) -> float:
    """Publish pipelined, as ingest does (id, key and timestamp headers); seconds until all acked."""
    naming = Naming()
    subjects: dict[int, str] = {}
    async with PipelinedPublisher(client) as publisher:
        started = time.perf_counter()
        futures = []
        for message in messages:
            subject = subjects.get(message.partition)
            if subject is None:
                subject = subjects[message.partition] = naming.subject(topic, message.partition)
            headers = encode_headers(
                msg_id=message.event_id, key=message.key, value_is_null=False, timestamp=time.time(), headers=None
            )
            futures.append(await publisher.publish(subject, message.payload, headers))
        await asyncio.gather(*futures)
        return time.perf_counter() - started


class ResultWatch:
    """Counts final results as they are written to the ``metrics`` bucket; an async context manager.

    ``seen`` maps each KV key to the ``time.time()`` it was first written at.
    """

    def __init__(self, client: Client) -> None:
        self._client = client
        self._sub: Subscription | None = None
        self.seen: dict[str, float] = {}
        self._changed = asyncio.Event()

    async def __aenter__(self) -> ResultWatch:
        prefix = len(f"$KV.{METRICS_BUCKET}.")

        async def on_msg(msg: Msg) -> None:
            key = msg.subject[prefix:]
            if key not in self.seen:
                self.seen[key] = time.time()
                self._changed.set()

        self._sub = await self._client.subscribe(f"$KV.{METRICS_BUCKET}.>", cb=on_msg, pending_msgs_limit=-1)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()

    def count(self, metric: str | None = None) -> int:
        if metric is None:
            return len(self.seen)
        return sum(1 for key in self.seen if key.startswith(f"{metric}."))

    def last(self, metric: str) -> float:
        """When the newest result of ``metric`` was written."""
        return max((at for key, at in self.seen.items() if key.startswith(f"{metric}.")), default=0.0)

    async def wait_for(self, keys: Iterable[str], *, timeout: float) -> None:
        """Until every key in ``keys`` has been written; TimeoutError names how many are missing."""
        wanted = set(keys)
        deadline = time.monotonic() + timeout
        while not wanted <= self.seen.keys():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                missing = wanted - self.seen.keys()
                raise TimeoutError(f"{len(missing)} of {len(wanted)} results not written, e.g. {sorted(missing)[:3]}")
            self._changed.clear()
            try:
                async with asyncio.timeout(min(remaining, 1.0)):
                    await self._changed.wait()
            except TimeoutError:
                pass


async def verify_sample(client: Client, expected: dict[str, dict[str, Any]], *, sample: int = 40) -> None:
    """Read ``sample`` expected keys back from KV: a stage that computes wrong results fails."""
    kv = await PublicStreams().ensure_metrics_bucket(client.jetstream())
    keys = random.Random(7).sample(sorted(expected), min(sample, len(expected)))
    for key in keys:
        try:
            actual = json.loads((await kv.get(key)).value or b"null")
        except KeyNotFoundError:
            actual = None
        if not values_match(actual, expected[key]):
            raise AssertionError(f"result {key} differs from the oracle: {actual} != {expected[key]}")
