"""Validated events into the faust topic the metric workers consume, in batches, acknowledged.

Both ingest paths (HTTP and NATS) end here. The events of one call are grouped by their student's
partition (CRC-32 of the UTF-8 ``student_id``, as :func:`~bridges.transport.session.partition_for_key`
computes it for every producer of the project, so one student's events stay in order in one
partition) and written as **batch records** (:mod:`tables.batch`) of at most
:data:`MAX_BATCH_EVENTS` events and :data:`MAX_BATCH_BYTES`: a worker then pays its per-record
costs once per batch, not once per event.

Each event's **arrival**, when the platform first stored it, travels with it: for an event from
the NATS ingest stream, the stored time of its message there, which the caller passes in and the
batch carries, so a backlog in between changes nothing; an HTTP event is first stored right
here, so its batch carries none and readers take the time JetStream stored the record (see
:mod:`bridges.public.arrival_clock` for why this, and not the time ingest accepted it).

Storage full: when JetStream has no room for a batch, :meth:`EventSink.publish` fails at once
with :class:`~tables.errors.StorageFull` (not after the acknowledgement deadline) and the sink
enters its storage-full state (:attr:`EventSink.storage`, logged once). It leaves it when a
batch to each refused partition is stored again, or when :meth:`EventSink.has_room` finds they
have room, asking without storing anything (what readiness checks).

Duplicates: a window counts an ``event_id`` once, for as long as it is open, however the copy
came (``tables.windowed``); that is the guarantee. Here, an event repeated within one call is
written once, and a batch's ``Nats-Msg-Id`` is a digest of its event ids, so an identical retry
(an HTTP request sent again, within 10 minutes) is stored once; both are reported as
duplicates. A copy in another batch is stored, and counted once downstream.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from nats.aio.client import Client
from nats.js.errors import NotFoundError

from bridges.jetstream import bounded_duplicate_window
from bridges.limits import UNLIMITED
from bridges.naming import Naming
from bridges.storage import StorageState, probe_room
from bridges.transport.envelope import encode_headers
from bridges.transport.publisher import Ack, PipelinedPublisher
from bridges.transport.session import partition_for_key
from bridges.transport.topics import DEFAULT_TOPIC_RETENTION, TopicRegistry, TopicSpec
from tables.batch import encode_batch
from tables.errors import BrokenError, ClosedError, StorageFull, StreamsError

__all__ = ["DEDUPE_WINDOW", "EventSink", "IngestEvent", "MAX_BATCH_BYTES", "MAX_BATCH_EVENTS", "SinkResult", "SinkState"]

log = logging.getLogger(__name__)

#: seconds within which the same batch stored again (an identical retry) is reported as duplicates
DEDUPE_WINDOW = 600.0
#: most events one record holds: enough to pay faust's per-record cost on hundreds of events
MAX_BATCH_EVENTS = 1000
#: most bytes of one record's payload (also kept under the server's max_payload)
MAX_BATCH_BYTES = 512 * 1024
#: bytes a record needs besides its events: the batch's brackets and arrivals, the headers
_ENVELOPE_ROOM = 8 * 1024
_PER_EVENT_ROOM = 24  # a comma and, for NATS ingest, one arrival time


def _batch_id(events: Sequence[IngestEvent], chunk: list[int]) -> str:
    """The batch's ``Nats-Msg-Id``: the same events in the same order give the same id, so an
    identical retry (an HTTP request sent again) is stored once and reported as duplicates."""
    digest = hashlib.blake2b(digest_size=16)
    for index in chunk:
        digest.update(events[index].event_id.encode())
        digest.update(b"\n")
    return f"batch-{digest.hexdigest()}"


class IngestEvent(Protocol):
    """What the sink needs of an event; ``contract.events.Event`` is one (bridges cannot import it)."""

    @property
    def event_id(self) -> str: ...

    @property
    def student_id(self) -> str: ...

    @property
    def type(self) -> str: ...

    def to_json_bytes(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class SinkResult:
    """How many events were stored now and how many the streams already held."""

    accepted: int
    duplicates: int


class SinkState(enum.Enum):
    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


class EventSink:
    """Publishes events into the events topic; an async context manager.

    Args:
        client: a connected nats-py client (the sink does not own it).
        topic: the faust topic the metric workers read.
        prefix: the deployment prefix of faust's names (``NATS_PREFIX``).
        partitions: partitions to create the topic with; an existing topic keeps its own count.
        replicas: JetStream replicas of the topic's streams.
        retention: seconds each partition stream keeps events (``EVENTS_RETENTION``).
        max_bytes: bytes each partition stream keeps at most, -1 for no byte limit (``EVENTS_MAX_BYTES``).
        ack_deadline: seconds :meth:`publish` waits for every acknowledgement.
        watermark: the promise to stamp on each batch (``IngestWatermark.current`` of
            :mod:`bridges.public.arrival_clock`); None, or returning None: batches carry none.
    """

    def __init__(
        self,
        client: Client,
        *,
        topic: str = "events",
        prefix: str = "faust",
        partitions: int = 8,
        replicas: int = 1,
        retention: float = DEFAULT_TOPIC_RETENTION,
        max_bytes: int = UNLIMITED,
        ack_deadline: float = 10.0,
        max_in_flight: int = 8192,
        watermark: Callable[[], float | None] | None = None,
    ) -> None:
        self._client = client
        self._naming = Naming(prefix)
        self._wanted = TopicSpec(
            name=topic, partitions=partitions, replicas=replicas, duplicate_window=DEDUPE_WINDOW,
            retention=retention, max_bytes=max_bytes,
        )
        self._ack_deadline = ack_deadline
        self._watermark = watermark
        # Resend after 2 s without an ack; give up well after the caller stopped waiting, so a
        # send that outlives its request still lands (and a retry of the request finds it).
        self._publisher = PipelinedPublisher(
            client, max_in_flight=max_in_flight, ack_timeout=2.0, give_up_after=max(30.0, 3 * ack_deadline)
        )
        self._subjects: list[str] = []
        self._state = SinkState.NEW
        #: whether JetStream refuses events for lack of room (per partition subject)
        self.storage = StorageState("ingest", "events are answered 503 (storage full)")

    @property
    def state(self) -> SinkState:
        return self._state

    @property
    def partitions(self) -> int:
        return len(self._subjects)

    @property
    def available(self) -> bool:
        """Open and connected: a :meth:`publish` now has a chance to succeed."""
        return self._state is SinkState.OPEN and self._client.is_connected

    async def start(self) -> EventSink:
        """Declare the topic (if missing) and make sure its streams keep ids for 10 minutes."""
        if self._state is not SinkState.NEW:
            raise ClosedError(f"a {self._state.value} event sink cannot be started")
        js = self._client.jetstream()
        registry = TopicRegistry(js, self._naming, replicas=self._wanted.replicas)
        await registry.start()
        spec = await registry.declare(self._wanted)
        await self._widen_duplicate_windows(spec)
        self._subjects = [self._naming.subject(spec.name, p) for p in range(spec.partitions)]
        await self._publisher.start()
        self._state = SinkState.OPEN
        return self

    async def _widen_duplicate_windows(self, spec: TopicSpec) -> None:
        """Raise (never lower) each partition stream's duplicate window to the contract's.

        The topic may have been created first by a worker's transport, whose window is its own
        default (2 minutes); the 10-minute dedupe promise holds only with the wider window.
        Widening changes nothing else about the stream or its data.
        """
        js = self._client.jetstream()
        for partition in range(spec.partitions):
            name = self._naming.stream(spec.name, partition)
            try:
                info = await js.stream_info(name)
            except NotFoundError:
                raise BrokenError(f"stream {name} of topic {spec.name!r} is missing") from None
            config = info.config
            # JetStream refuses a window longer than the stream keeps messages.
            window = bounded_duplicate_window(DEDUPE_WINDOW, config.max_age or 0.0)
            if (config.duplicate_window or 0) < window:
                log.info(
                    "widening the duplicate window of %s from %ss to %ss",
                    name, config.duplicate_window, window,
                )
                config.duplicate_window = window
                await js.update_stream(config)

    async def publish(
        self, events: Sequence[IngestEvent], *, arrivals: Sequence[float] | None = None
    ) -> SinkResult:
        """Publish ``events`` in order and wait until JetStream stored (or already had) each.

        ``arrivals``: for events stored by the platform before (the NATS ingest stream), when
        each was first stored, in epoch seconds; None for events first stored here (HTTP).

        Raises :class:`BrokenError` when NATS is not connected, refuses a message, or does not
        acknowledge all of them within ``ack_deadline``; some may then be stored, and publishing
        the same events again is safe (they come back as duplicates). :class:`StorageFull`, at
        once, when JetStream has no room for one of them.
        """
        if arrivals is not None and len(arrivals) != len(events):
            raise ValueError(f"{len(arrivals)} arrival times for {len(events)} events")
        if self._state is not SinkState.OPEN:
            raise ClosedError(f"the event sink is {self._state.value}")
        if not self._client.is_connected:
            # Fail fast: nats-py would buffer while reconnecting and the caller would wait for
            # the whole deadline to learn what is already known.
            raise BrokenError("NATS is not connected")
        if not events:
            return SinkResult(0, 0)
        # An event twice in one call (same student, same id) is written once.
        unique: dict[tuple[str, str], int] = {}
        for index, event in enumerate(events):
            unique.setdefault((event.student_id, event.event_id), index)
        repeated = len(events) - len(unique)
        if repeated:
            kept = sorted(unique.values())
            events = [events[i] for i in kept]
            arrivals = None if arrivals is None else [arrivals[i] for i in kept]
        subjects = self._subjects
        # Read before anything is written: it must hold for every record written from now on.
        stamp = None if self._watermark is None else self._watermark()
        encoded = [event.to_json_bytes() for event in events]
        futures: list[asyncio.Future[Ack]] = []
        sizes: list[int] = []
        written: set[str] = set()
        for partition, chunk in self._batches(events, encoded):
            payload = encode_batch(
                [encoded[i] for i in chunk],
                None if arrivals is None else [arrivals[i] for i in chunk],
                watermark=stamp,
            )
            headers = encode_headers(
                msg_id=_batch_id(events, chunk), key=None, value_is_null=False, timestamp=None, headers=None
            )
            futures.append(await self._publisher.publish(subjects[partition], payload, headers))
            sizes.append(len(chunk))
            written.add(subjects[partition])
        # asyncio.wait, not gather: on a timeout the sends must stay alive in the publisher
        # (they may still land), and gather would cancel them.
        done, pending = await asyncio.wait(
            futures, timeout=self._ack_deadline, return_when=asyncio.FIRST_EXCEPTION
        )
        for future in done:
            error = future.exception()
            if error is not None:
                if isinstance(error, StorageFull):
                    self.storage.refused(error)
                if isinstance(error, StreamsError):
                    raise error
                raise BrokenError(f"publishing an event failed: {error}") from error
        if pending:
            raise BrokenError(
                f"JetStream acknowledged {len(done)} of {len(futures)} batches of events within {self._ack_deadline}s"
            )
        if self.storage.full:
            for subject in written:
                self.storage.stored(subject)
        duplicates = sum(size for future, size in zip(futures, sizes, strict=True) if future.result().duplicate)
        return SinkResult(len(events) - duplicates, duplicates + repeated)

    async def has_room(self, timeout: float = 1.0) -> bool:
        """Whether the events topic has room: at once when no write was refused for lack of
        it; else each refused partition is asked (nothing is stored) and left out of the
        storage-full state once it has room again. A partition that does not answer stays in."""
        for subject in self.storage.resources:
            try:
                refusal = await probe_room(self._client, subject, timeout=timeout)
            except BrokenError:
                continue
            if refusal is None:
                self.storage.stored(subject)
        return not self.storage.full

    def _batches(self, events: Sequence[IngestEvent], encoded: list[bytes]) -> list[tuple[int, list[int]]]:
        """The events' indexes by partition, in order, cut into batches of bounded count and size."""
        partitions = len(self._subjects)
        by_partition: dict[int, list[int]] = {}
        for index, event in enumerate(events):
            by_partition.setdefault(partition_for_key(event.student_id.encode(), partitions), []).append(index)
        limit = min(MAX_BATCH_BYTES, self._client.max_payload - _ENVELOPE_ROOM)
        batches: list[tuple[int, list[int]]] = []
        for partition, indexes in by_partition.items():
            chunk: list[int] = []
            size = 0
            for index in indexes:
                length = len(encoded[index]) + _PER_EVENT_ROOM
                if chunk and (len(chunk) >= MAX_BATCH_EVENTS or size + length > limit):
                    batches.append((partition, chunk))
                    chunk, size = [], 0
                chunk.append(index)
                size += length
            batches.append((partition, chunk))
        return batches

    async def close(self, timeout: float = 10.0) -> None:
        """Wait up to ``timeout`` for outstanding acknowledgements, then stop. Idempotent."""
        if self._state is SinkState.CLOSED:
            return
        self._state = SinkState.CLOSED
        await self._publisher.close(timeout)

    async def __aenter__(self) -> EventSink:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
