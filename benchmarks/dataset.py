"""The learning events the suite pushes through every stage, and how results are watched.

Every throughput stage (ceiling, faust core, full pipeline) processes the same
:class:`Dataset`: realistic sessions from :func:`testkit.oracle.generate_sessions`, a day in the
past, time-ordered, and a **stored backlog**: each event arrived (was first stored by the
platform) :data:`ARRIVAL_DELAY` after it occurred, and its message carries that arrival in
``Faust-Ts``, as NATS ingest passes a stored time on. So every event arrived long before its
window's end + grace and none is late, whenever it is processed — but only for a reader that
starts after the backlog is stored: a running worker has been promised by the streams that
nothing older than "now" is still to come, and would rightly judge it late (see
``bridges/public/arrival_clock.py``). Each stage's module says how it meets that. Arrivals rise with
the events' order, so within a partition they never decrease: what a reader of one partition
has seen promises nothing earlier is still to come in it.

A stage is done when the last of the oracle's expected results is in KV. Nothing beyond the
events is needed to close the last windows: the workers' arrival clock does that once they
have caught up with the backlog (the faust-core stage's clock, once the last record is fed).

Results are watched on ``$KV.metrics.>`` with a core subscription: the moment the server routes
a KV write is the moment it is readable (within microseconds), and no consumer has to be created
per stage. Keys are counted once, so a refused rewrite of a final window cannot count twice.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.errors import KeyNotFoundError, NotFoundError

from bridges.naming import Naming
from bridges.public.streams import PublicStreams
from bridges.transport.envelope import encode_headers
from bridges.transport.publisher import PipelinedPublisher
from bridges.transport.session import partition_for_key
from bridges.transport.topics import TopicRegistry, TopicSpec
from contract.names import EVENTS_TOPIC, METRICS_BUCKET
from tables.batch import encode_batch
from testkit.oracle import event_epoch, expected_results, generate_sessions
from testkit.pipeline import values_match

__all__ = [
    "ARRIVAL_DELAY",
    "Dataset",
    "Message",
    "ResultWatch",
    "dead_letter_counts",
    "declare_topic",
    "make_dataset",
    "publish",
    "verify_sample",
]

#: events per student and minute that generate_sessions produces (measured: about 4.8)
_EVENTS_PER_STUDENT_MINUTE = 4.5
_MINUTES = 30


#: seconds between an event's occurred_at and its arrival, in the dataset's backlog
ARRIVAL_DELAY = 0.5


class Message(NamedTuple):
    """One event as it is stored in the events topic.

    ``arrived_at`` goes into ``Faust-Ts``: when the platform first stored the event (epoch
    seconds). None: no such header, so the time JetStream stores the message is its arrival, as
    for an event that came in over HTTP.
    """

    partition: int
    key: bytes
    payload: bytes
    event_id: str
    arrived_at: float | None = None


@dataclass(frozen=True)
class Dataset:
    """``events`` (time-ordered) and the oracle's results."""

    events: list[dict[str, Any]]
    partitions: int
    window: int
    grace: int
    expected: dict[str, dict[str, Any]] = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.events)

    def messages(self) -> list[Message]:
        """The events in order, each in the partition its student's key maps to, with its arrival."""
        out = []
        for event in self.events:
            key = event["student_id"].encode()
            payload = json.dumps(event, separators=(",", ":")).encode()
            arrived_at = event_epoch(event) + ARRIVAL_DELAY
            out.append(Message(partition_for_key(key, self.partitions), key, payload, event["event_id"], arrived_at))
        return out

    def last_arrival(self) -> float:
        """When the last event arrived (epoch seconds)."""
        return max(event_epoch(event) for event in self.events) + ARRIVAL_DELAY


def make_dataset(size: int, *, partitions: int, window: int, grace: int, seed: int = 1) -> Dataset:
    """``size`` events of a day ago, and the expected results."""
    start = (int(time.time()) // 86_400 - 1) * 86_400
    students = max(10, round(size / (_EVENTS_PER_STUDENT_MINUTE * _MINUTES)))
    events: list[dict[str, Any]] = []
    while len(events) < size:
        events = generate_sessions(seed=seed, students=students, minutes=_MINUTES, start_epoch=start)
        students = students * 5 // 4 + 1
    events = events[:size]
    return Dataset(
        events=events,
        partitions=partitions,
        window=window,
        grace=grace,
        expected=expected_results(events, window_seconds=window),
    )


async def declare_topic(client: Client, partitions: int, topic: str = EVENTS_TOPIC) -> None:
    """Create a topic as a worker would (workers started later find it)."""
    registry = TopicRegistry(client.jetstream(), Naming())
    await registry.start()
    await registry.declare(TopicSpec(name=topic, partitions=partitions))


def batched(messages: Sequence[Message], size: int) -> list[Message]:
    """The messages as ingest writes them: per partition, batch records of up to ``size`` events
    (:mod:`tables.batch`), each carrying its events' arrivals and, as its watermark, the last of
    them (arrivals only grow within a partition here, so every later record arrived after it)."""
    by_partition: dict[int, list[Message]] = {}
    for message in messages:
        by_partition.setdefault(message.partition, []).append(message)
    out = []
    for partition, items in by_partition.items():
        for start in range(0, len(items), size):
            chunk = items[start : start + size]
            arrivals = [float(m.arrived_at or 0.0) for m in chunk]
            payload = encode_batch([m.payload for m in chunk], arrivals, watermark=max(arrivals))
            out.append(Message(partition, chunk[0].key, payload, f"batch-{chunk[0].event_id}", None))
    return out


async def publish(client: Client, messages: Sequence[Message], *, topic: str = EVENTS_TOPIC) -> float:
    """Publish pipelined, as ingest does (id and key headers, and ``Faust-Ts`` for a message with
    an arrival); seconds until all acked."""
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
                msg_id=message.event_id, key=message.key, value_is_null=False, timestamp=message.arrived_at,
                headers=None,
            )
            futures.append(await publisher.publish(subject, message.payload, headers))
        await asyncio.gather(*futures)
        return time.perf_counter() - started


class ResultWatch:
    """Counts final results as they are written to the ``metrics`` bucket; an async context manager.

    ``seen`` maps each KV key to the ``time.time()`` it was first written at; with
    ``keep_values``, ``values`` maps it to the value then written (workers write only final values
    unless ``METRICS_UPDATE_SECONDS`` is set, and a final value is never rewritten).
    """

    def __init__(self, client: Client, *, keep_values: bool = False) -> None:
        self._client = client
        self._sub: Subscription | None = None
        self._keep_values = keep_values
        self.seen: dict[str, float] = {}
        self.values: dict[str, bytes] = {}
        self._changed = asyncio.Event()

    async def __aenter__(self) -> ResultWatch:
        prefix = len(f"$KV.{METRICS_BUCKET}.")

        async def on_msg(msg: Msg) -> None:
            key = msg.subject[prefix:]
            if key not in self.seen:
                self.seen[key] = time.time()
                if self._keep_values:
                    self.values[key] = msg.data
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


async def dead_letter_counts(client: Client, subjects: str = "deadletter.>") -> Counter[str]:
    """How many messages the dead-letter stream holds per subject matching ``subjects``."""
    try:
        info = await client.jetstream().stream_info(PublicStreams().deadletter, subjects_filter=subjects)
    except NotFoundError:
        return Counter()  # nothing was ever dead-lettered
    return Counter(info.state.subjects or {})
