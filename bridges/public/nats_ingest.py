"""The NATS ingest path: events published to ``events.<type>.<student_id>`` into the events topic.

Any NATS client may publish an event's JSON there, with a core or a JetStream publish: the
``<PREFIX>_INGEST`` work-queue stream captures ``events.>`` either way. Every web process pulls
the same durable consumer (:data:`~bridges.public.streams.INGEST_CONSUMER`), so several processes
split the work and a process that dies leaves its unacked messages to the others.

A message is judged in this order, and the first problem found is its reason:

1. the subject has exactly three tokens, ``events.<type>.<student_id>``;
2. the payload is at most :data:`MAX_EVENT_BYTES` (bigger ones are not parsed at all);
3. the injected validator accepts it (bridges cannot import the event contract, so ``app`` hands
   it in; it returns the event or a :class:`Rejection` with a human reason naming the field);
4. the subject's ``type`` and ``student_id`` tokens equal the event's.

Valid events go through the same :class:`~bridges.public.event_sink.EventSink` as HTTP ingest (so an
event sent both ways counts once), each carrying its **arrival**, the time the ingest stream
stored it: a backlog here or anywhere downstream does not make it look later than it was. The
contract's "not too far in the future" rule is checked against that arrival too. Invalid ones are published to ``deadletter.invalid`` with the
original payload and the headers ``Reason`` and ``Original-Subject``. Processing continues.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg

from bridges.jetstream import parse_ack_subject, stored_at
from bridges.public.durable_puller import DurablePuller, PullerConfig
from bridges.public.event_sink import EventSink, IngestEvent
from bridges.public.streams import DEADLETTER_INVALID, INGEST_CONSUMER, PublicStreams
from bridges.transport.publisher import Ack, PipelinedPublisher
from contract.deadletters import REASON_HEADER, header_text
from tables.errors import BrokenError, ClosedError, StreamsError

__all__ = [
    "EventValidator",
    "HDR_ORIGINAL_SIZE",
    "HDR_ORIGINAL_SUBJECT",
    "HDR_REASON",
    "IngestState",
    "IngestStats",
    "MAX_EVENT_BYTES",
    "NatsIngest",
    "Rejection",
]

log = logging.getLogger(__name__)

#: Largest payload judged as an event. A valid event is at most about 17 KiB as canonical JSON
#: (``data`` is capped at 16 KiB); 64 KiB leaves room for a producer's whitespace and escapes.
MAX_EVENT_BYTES = 64 * 1024

HDR_REASON = REASON_HEADER
HDR_ORIGINAL_SUBJECT = "Original-Subject"
#: set when an oversize payload was cut to MAX_EVENT_BYTES in the dead letter
HDR_ORIGINAL_SIZE = "Original-Size"

_NAK_DELAY = b'-NAK {"delay": 1000000000}'


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a payload is not a valid event, in words a producer can act on (names the field)."""

    reason: str


#: (payload, the event's arrival in epoch seconds) -> the event, or why it is not one
EventValidator = Callable[[bytes, float], IngestEvent | Rejection]


@dataclass
class IngestStats:
    """Counts since start, for logs and tests."""

    forwarded: int = 0
    #: of those forwarded, the events the events topic held already
    duplicates: int = 0
    dead_lettered: int = 0
    retried: int = 0


class IngestState(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    CLOSED = "closed"


class NatsIngest:
    """Moves events from the ingest stream into the events topic; an async context manager.

    Args:
        client: a connected nats-py client (not owned).
        sink: where valid events go (started by the caller).
        validate: see :data:`EventValidator`.
        streams: the deployment's public streams (the ingest and dead-letter streams are
            created on :meth:`start` if missing).
        chunk: messages judged and published together before their acks.
        ack_deadline: seconds to wait for the dead letters' acknowledgements.
    """

    def __init__(
        self,
        client: Client,
        sink: EventSink,
        validate: EventValidator,
        *,
        streams: PublicStreams,
        config: PullerConfig = PullerConfig(),
        chunk: int = 256,
        ack_deadline: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._sink = sink
        self._validate = validate
        self._streams = streams
        self._chunk = chunk
        self._ack_deadline = ack_deadline
        self._clock = clock
        self._config = config
        self._data = asyncio.Event()
        self._puller = DurablePuller(
            client, stream=streams.ingest, consumer=INGEST_CONSUMER, on_data=self._data.set, config=config
        )
        self._deadletters = PipelinedPublisher(client, ack_timeout=2.0, give_up_after=max(30.0, 3 * ack_deadline))
        self._task: asyncio.Task[None] | None = None
        self._draining = False
        self._state = IngestState.NEW
        self.stats = IngestStats()

    @property
    def state(self) -> IngestState:
        return self._state

    @property
    def running(self) -> bool:
        """Started and its processing task alive (it only ends on close or on a bug)."""
        return self._state is IngestState.RUNNING and self._task is not None and not self._task.done()

    async def start(self) -> NatsIngest:
        if self._state is not IngestState.NEW:
            raise ClosedError(f"a {self._state.value} NATS ingest cannot be started")
        js = self._client.jetstream()
        await self._streams.ensure_ingest(js)
        await self._streams.ensure_deadletter(js)
        await self._deadletters.start()
        await self._puller.start()
        self._state = IngestState.RUNNING
        self._task = asyncio.create_task(self._run(), name="nats-ingest")
        self._task.add_done_callback(self._report_end)
        return self

    async def stop(self, timeout: float = 15.0) -> None:
        """Stop pulling, finish what was pulled (forward, dead-letter, ack), then close.

        Bounded by ``timeout``; what is not finished by then is left unacked and redelivered to
        another process after the consumer's ``ack_wait``. Idempotent.
        """
        if self._state is IngestState.RUNNING:
            self._state = IngestState.STOPPING
            deadline = time.monotonic() + timeout
            await self._puller.stop_pulling(timeout=min(timeout, self._config.expires + 1.0))
            self._draining = True
            self._data.set()
            if self._task is not None:
                # asyncio.wait, not wait_for: neither cancels the task on timeout nor raises the
                # error of a task that failed (already logged by _report_end).
                _, unfinished = await asyncio.wait({self._task}, timeout=max(0.0, deadline - time.monotonic()))
                if unfinished:
                    log.warning("NATS ingest: %d messages unfinished at stop", self._puller.buffered)
        await self.close()

    async def close(self) -> None:
        """Stop at once (unfinished messages are redelivered later). Idempotent."""
        if self._state is IngestState.CLOSED:
            return
        self._state = IngestState.CLOSED
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task})  # its end (cancelled or failed) is _report_end's
        await self._puller.close()
        await self._deadletters.close()

    async def __aenter__(self) -> NatsIngest:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _report_end(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("NATS ingest stopped by an unexpected error", exc_info=task.exception())

    # -- processing -----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._data.wait()
            self._data.clear()
            while batch := self._puller.take(self._chunk):
                await self._process(batch)
            if self._draining and not self._puller.buffered:
                return

    async def _process(self, batch: list[Msg]) -> None:
        """Judge a chunk, publish it onwards, and only then ack it.

        Order: (1) judge every message; (2) send the dead letters (pipelined, not yet awaited);
        (3) publish the valid events and wait until the events topic stored each; (4) wait for
        the dead letters' acks; (5) ack every ingest message; (6) free the puller's capacity.
        If (3) or (4) fails, the whole chunk is NAKed instead of acked: it is redelivered (here
        or to another process) and the events already forwarded come back as duplicates.
        """
        events: list[IngestEvent] = []
        arrivals: list[float] = []
        dead: list[tuple[Msg, str]] = []
        for msg in batch:
            arrived_at = self._arrival(msg)
            verdict = self._judge(msg, arrived_at)
            if isinstance(verdict, Rejection):
                dead.append((msg, verdict.reason))
            else:
                events.append(verdict)
                arrivals.append(arrived_at)
        try:
            acks = [await self._dead_letter(msg, reason) for msg, reason in dead]
            stored = await self._sink.publish(events, arrivals=arrivals)
            await self._wait(acks)
        except StreamsError as exc:
            log.warning("NATS ingest: %d messages will be redelivered: %s", len(batch), exc)
            self.stats.retried += len(batch)
            await self._reply(batch, _NAK_DELAY)
        else:
            await self._reply(batch, b"+ACK")
            self.stats.forwarded += len(events)
            self.stats.duplicates += stored.duplicates
            self.stats.dead_lettered += len(dead)
            for msg, reason in dead:
                log.info("dead-lettered %s: %s", msg.subject, reason)
        finally:
            self._puller.settle(len(batch))

    def _arrival(self, msg: Msg) -> float:
        """When the ingest stream stored ``msg`` (from its reply subject); the clock if unknown."""
        stored = stored_at(msg.reply) if msg.reply else None
        return stored if stored is not None else self._clock()

    def _judge(self, msg: Msg, now: float) -> IngestEvent | Rejection:
        tokens = msg.subject.split(".")
        if len(tokens) != 3:
            return Rejection(f"subject: must be events.<type>.<student_id> (3 tokens), got {len(tokens)} tokens")
        size = len(msg.data)
        if size > MAX_EVENT_BYTES:
            return Rejection(f"payload: {size} bytes; an event is at most {MAX_EVENT_BYTES} bytes")
        verdict = self._validate(msg.data, now)
        if isinstance(verdict, Rejection):
            return verdict
        _, type_, student_id = tokens
        if verdict.type != type_:
            return Rejection(f"type: the event says {verdict.type!r} but the subject says {type_!r}")
        if verdict.student_id != student_id:
            return Rejection(
                f"student_id: the event says {verdict.student_id!r} but the subject says {student_id!r}"
            )
        return verdict

    async def _dead_letter(self, msg: Msg, reason: str) -> asyncio.Future[Ack]:
        ack = parse_ack_subject(msg.reply)
        # The ingest stream sequence as the id: a redelivered message is dead-lettered once.
        msg_id = f"{self._streams.ingest}-{ack.stream_seq if ack else msg.reply}"
        headers = {
            "Nats-Msg-Id": msg_id,
            HDR_REASON: header_text(reason),
            HDR_ORIGINAL_SUBJECT: header_text(msg.subject),
        }
        payload = msg.data
        if len(payload) > MAX_EVENT_BYTES:
            # Cut: the original filled a NATS payload, and the headers would push it over.
            headers[HDR_ORIGINAL_SIZE] = str(len(payload))
            payload = payload[:MAX_EVENT_BYTES]
        return await self._deadletters.publish(DEADLETTER_INVALID, payload, headers)

    async def _wait(self, acks: list[asyncio.Future[Ack]]) -> None:
        if not acks:
            return
        done, pending = await asyncio.wait(acks, timeout=self._ack_deadline, return_when=asyncio.FIRST_EXCEPTION)
        for future in done:
            error = future.exception()
            if error is not None:
                raise error if isinstance(error, StreamsError) else BrokenError(str(error))
        if pending:
            raise BrokenError(f"{len(pending)} dead letters not acknowledged within {self._ack_deadline}s")

    async def _reply(self, batch: list[Msg], body: bytes) -> None:
        publish = self._client.publish
        try:
            for msg in batch:
                await publish(msg.reply, body)
        except Exception as exc:  # noqa: BLE001 - unacked messages are redelivered after ack_wait
            log.warning("NATS ingest: replying to the ingest stream failed: %s", exc)
