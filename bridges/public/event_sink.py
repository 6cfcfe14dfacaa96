"""Validated events into the faust topic the metric workers consume, acknowledged and deduplicated.

Both ingest paths (HTTP and NATS) end here, which is what makes deduplication work across them:
every event is published with ``Nats-Msg-Id: <event_id>`` to the stream of its student's
partition, and that stream drops a second message with the same id seen within its duplicate
window (10 minutes, the contract's). One student's events always land in one partition
(CRC-32 of the UTF-8 ``student_id``, as :func:`~bridges.transport.session.partition_for_key` computes it for
every producer of the project), so a retried event meets its first copy there.

Limits of that design, stated rather than hidden: an ``event_id`` reused for *another* student
lands in another partition and is not recognised as a duplicate; and a retry of an event whose
first copy was stored but whose ack was lost is reported as a duplicate (it is one: stored once).

The message is a faust message as :mod:`bridges.transport.envelope` defines it: key = ``student_id``,
value = the event's canonical JSON, and as its timestamp the event's **arrival**: when the
platform first stored it. For an event from the NATS ingest stream that is the stored time of
its message there, which the caller passes in and the message carries (``Faust-Ts``), so a
backlog in between changes nothing; an HTTP event is first stored right here, so its message
carries no timestamp and readers take the time JetStream stored it (see
:mod:`bridges.public.arrival_clock` for why this, and not the time ingest accepted it).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from nats.aio.client import Client
from nats.js.errors import NotFoundError

from bridges.transport.envelope import encode_headers
from bridges.jetstream import bounded_duplicate_window
from bridges.limits import UNLIMITED
from bridges.naming import Naming
from bridges.transport.publisher import Ack, PipelinedPublisher
from bridges.transport.session import partition_for_key
from bridges.transport.topics import DEFAULT_TOPIC_RETENTION, TopicRegistry, TopicSpec
from tables.errors import BrokenError, ClosedError, StreamsError

__all__ = ["DEDUPE_WINDOW", "EventSink", "IngestEvent", "SinkResult", "SinkState"]

log = logging.getLogger(__name__)

#: seconds within which a second event with the same id counts as a duplicate (the contract's)
DEDUPE_WINDOW = 600.0


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
    ) -> None:
        self._client = client
        self._naming = Naming(prefix)
        self._wanted = TopicSpec(
            name=topic, partitions=partitions, replicas=replicas, duplicate_window=DEDUPE_WINDOW,
            retention=retention, max_bytes=max_bytes,
        )
        self._ack_deadline = ack_deadline
        # Resend after 2 s without an ack; give up well after the caller stopped waiting, so a
        # send that outlives its request still lands (and a retry of the request finds it).
        self._publisher = PipelinedPublisher(
            client, max_in_flight=max_in_flight, ack_timeout=2.0, give_up_after=max(30.0, 3 * ack_deadline)
        )
        self._subjects: list[str] = []
        self._state = SinkState.NEW

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
        the same events again is safe (they come back as duplicates).
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
        subjects = self._subjects
        partitions = len(subjects)
        futures: list[asyncio.Future[Ack]] = []
        for index, event in enumerate(events):
            key = event.student_id.encode()
            headers = encode_headers(
                msg_id=event.event_id,
                key=key,
                value_is_null=False,
                timestamp=None if arrivals is None else arrivals[index],
                headers=None,
            )
            subject = subjects[partition_for_key(key, partitions)]
            futures.append(await self._publisher.publish(subject, event.to_json_bytes(), headers))
        # asyncio.wait, not gather: on a timeout the sends must stay alive in the publisher
        # (they may still land), and gather would cancel them.
        done, pending = await asyncio.wait(
            futures, timeout=self._ack_deadline, return_when=asyncio.FIRST_EXCEPTION
        )
        for future in done:
            error = future.exception()
            if error is not None:
                if isinstance(error, StreamsError):
                    raise error
                raise BrokenError(f"publishing an event failed: {error}") from error
        if pending:
            raise BrokenError(
                f"JetStream acknowledged {len(done)} of {len(futures)} events within {self._ack_deadline}s"
            )
        duplicates = sum(1 for future in futures if future.result().duplicate)
        return SinkResult(len(futures) - duplicates, duplicates)

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
