"""Reading one topic partition (one stream) with batched pull requests into a bounded buffer.

nats-py's ``PullSubscription.fetch`` costs tasks and a uuid per message (13-16k msg/s here); by
hand — publishing ``{"batch": n, "expires": ns}`` to ``$JS.API.CONSUMER.MSG.NEXT`` with our own
reply subject — the same machine reads 80-100k msg/s. Requests are only issued while the buffer
has room for what they ask, so a slow agent leaves messages on the server: backpressure reaches
the broker instead of piling up in memory.

Room is counted in records and in bytes. A record may hold one event or a batch of a thousand
(ingest writes batches, :mod:`tables.batch`), so a count alone bounds nothing: 2,048 batch records
of a worker catching up on a backlog would be half a gigabyte per partition. A request asks for as
many records as fit in ``max_bytes`` at the size records had so far (the first assumes the
largest message the server allows), so a reader holds about ``max_bytes``, and at least one
record whatever its size.

Each reader owns an ephemeral, ack-less consumer positioned by stream sequence. Offsets are
committed elsewhere (a KV bucket), so the consumer needs no acks; seeking is recreating it.
Messages whose consumer name is not the current one (from before a seek) are dropped, and a gap
in the consumer sequence (a lost response) makes the reader recreate its consumer where it
stopped, so nothing is skipped.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from bridges.jetstream import parse_ack_subject
from tables.errors import BrokenError, ClosedError

__all__ = ["PartitionReader", "ReaderConfig", "Record"]

#: weight of the newest record in the running size estimate
_SIZE_WEIGHT = 0.1

log = logging.getLogger(__name__)


class Record(NamedTuple):
    """A message as read: its offset (stream sequence), stream timestamp and the raw message."""

    offset: int
    timestamp_ns: int
    msg: Msg


@dataclass(frozen=True)
class ReaderConfig:
    batch: int = 512
    #: records a reader may hold (buffered plus requested); 0 would mean "no prefetch"
    capacity: int = 2048
    #: bytes of records a reader may hold (buffered plus expected from its requests), about
    max_bytes: int = 16 * 1024 * 1024
    max_requests: int = 2
    #: how long a pull request waits on the server for messages
    expires: float = 5.0
    #: consumers of a vanished reader are removed by the server after this long
    inactive_threshold: float = 60.0


class PartitionReader:
    """Prefetches one stream's messages from a position; hands them out in order.

    Args:
        client: connected nats-py client.
        stream: the partition's stream.
        filter_subject: data subjects to read (a compacting topic excludes its fence markers).
        name: unique consumer-name stem (per process and partition).
        on_data: called (synchronously) whenever records become available.
    """

    def __init__(
        self,
        client: Client,
        js: JetStreamContext,
        *,
        stream: str,
        filter_subject: str,
        name: str,
        on_data: Callable[[], None],
        config: ReaderConfig = ReaderConfig(),
    ) -> None:
        self._client = client
        self._js = js
        self._stream = stream
        self._filter = filter_subject
        self._name = name
        self._on_data = on_data
        self._config = config
        self._buffer: collections.deque[Record] = collections.deque()
        self._buffered_bytes = 0
        #: running estimate of a record's size (payload bytes); None until one was received
        self._record_bytes: float | None = None
        self._epoch = 0
        self._consumer = ""
        self._inbox = client.new_inbox()
        self._sub: Subscription | None = None
        # Outstanding pull requests, oldest first: how many messages each may still deliver.
        self._requests: collections.deque[int] = collections.deque()
        self._requested_at = 0.0
        self._next_offset = 1  # the next offset take() hands out
        self._received_offset = 0  # the last offset received into the buffer
        self._consumer_seq = 0  # the last consumer sequence received (gap detection)
        self._highwater = 1
        self._paused = True
        self._closed = False
        self._seeking: asyncio.Task[None] | None = None
        self._pump_wakeup = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None

    # -- public surface -------------------------------------------------------------------

    @property
    def stream(self) -> str:
        return self._stream

    @property
    def position(self) -> int:
        """The offset of the next record :meth:`take` returns (Kafka's ``position``)."""
        return self._next_offset

    @property
    def highwater(self) -> int:
        """Estimated offset after the last message in the stream (from delivery metadata)."""
        return max(self._highwater, self._received_offset + 1)

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def buffered_bytes(self) -> int:
        """Payload bytes of the buffered records."""
        return self._buffered_bytes

    @property
    def epoch(self) -> int:
        """Increases at every seek; records taken under an older epoch cannot be returned."""
        return self._epoch

    async def start(self, offset: int) -> None:
        # Pull requests of consumer epoch N ask for replies on <inbox>.N: status replies (which,
        # unlike data, arrive on the reply subject itself) of a replaced consumer are then told
        # apart from the current one's.
        self._sub = await self._client.subscribe(
            f"{self._inbox}.*", cb=self._on_msg, pending_msgs_limit=4 * self._config.capacity
        )
        self._pump = asyncio.create_task(self._run_pump(), name=f"pull-{self._stream}")
        await self.seek(offset)

    async def seek(self, offset: int) -> None:
        """Position the reader so that the next record handed out has ``offset`` (or later)."""
        if self._closed:
            raise ClosedError(f"reader of {self._stream} is closed")
        offset = max(1, offset)
        self._epoch += 1
        self._buffer.clear()
        self._buffered_bytes = 0
        self._requests.clear()
        self._next_offset = offset
        self._received_offset = offset - 1
        self._consumer_seq = 0
        old = self._consumer
        name = f"{self._name}-{self._epoch}"
        # No pulls and no deliveries accepted until the new consumer exists.
        self._consumer = ""
        config = ConsumerConfig(
            name=name,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=offset,
            ack_policy=AckPolicy.NONE,
            filter_subject=self._filter,
            inactive_threshold=self._config.inactive_threshold,
            mem_storage=True,
            num_replicas=1,
            max_waiting=max(16, 2 * self._config.max_requests),
        )
        try:
            await self._js.add_consumer(self._stream, config=config)
        except NotFoundError:
            raise BrokenError(f"stream {self._stream} does not exist") from None
        if self._epoch != int(name.rsplit("-", 1)[1]):
            return  # a later seek overtook this one
        self._consumer = name
        if old:
            asyncio.create_task(self._delete_consumer(old), name=f"delete-{old}")
        self._wake()

    def pause(self) -> None:
        """Stop issuing pull requests (what is buffered stays)."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        self._wake()

    def take(self, limit: int) -> list[Record]:
        """Up to ``limit`` buffered records, in offset order."""
        buffer = self._buffer
        n = min(limit, len(buffer))
        if not n:
            return []
        out = [buffer.popleft() for _ in range(n)]
        self._buffered_bytes -= sum(len(record.msg.data) for record in out)
        self._next_offset = out[-1].offset + 1
        self._wake()
        return out

    def unread(self, records: list[Record], epoch: int) -> None:
        """Put back records taken but not delivered, so the next take returns them again.

        Ignored when the reader was repositioned since they were taken (a seek already decided
        what comes next).
        """
        if not records or epoch != self._epoch:
            return
        self._buffer.extendleft(reversed(records))
        self._buffered_bytes += sum(len(record.msg.data) for record in records)
        self._next_offset = records[0].offset
        self._on_data()

    def reset_after_reconnect(self) -> None:
        """Recreate the consumer where reading stopped (the server may have lost it)."""
        if self._closed or (self._seeking is not None and not self._seeking.done()):
            return  # one recreation at a time; the one under way reads from the same place
        self._seeking = asyncio.create_task(self._reseek(), name=f"reseek-{self._stream}")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pump is not None:
            self._wake()
            try:
                async with asyncio.timeout(5.0):
                    await self._pump
            except TimeoutError:  # stuck in a publish: cancel it
                self._pump.cancel()
            except asyncio.CancelledError:
                pass
        if self._seeking is not None and not self._seeking.done():
            self._seeking.cancel()
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:
                log.debug("unsubscribe of %s failed", self._inbox, exc_info=True)
        if self._consumer and self._client.is_connected:
            await self._delete_consumer(self._consumer)

    # -- incoming -------------------------------------------------------------------------

    async def _on_msg(self, msg: Msg) -> None:
        reply = msg.reply
        if reply:
            info = parse_ack_subject(reply)
            if info is None:
                return
            if info.consumer != self._consumer:
                return  # delivered to a consumer replaced by a seek (or not created yet)
            if info.consumer_seq != self._consumer_seq + 1:
                log.warning(
                    "%s: consumer sequence jumped %d -> %d; re-reading from %d",
                    self._stream, self._consumer_seq, info.consumer_seq, self._received_offset + 1,
                )
                self.reset_after_reconnect()
                return
            self._consumer_seq = info.consumer_seq
            self._received_offset = info.stream_seq
            self._highwater = info.stream_seq + info.pending + 1
            self._buffer.append(Record(info.stream_seq, info.timestamp_ns, msg))
            size = len(msg.data)
            self._buffered_bytes += size
            estimate = self._record_bytes
            self._record_bytes = size if estimate is None else estimate + _SIZE_WEIGHT * (size - estimate)
            if self._requests:
                self._requests[0] -= 1
                if self._requests[0] <= 0:
                    self._requests.popleft()
                    self._wake()
            self._on_data()
            return
        if msg.subject == f"{self._inbox}.{self._epoch}":
            self._on_status(msg)

    def _on_status(self, msg: Msg) -> None:
        headers = msg.headers or {}
        status = headers.get("Status", "")
        if status == "100":
            return  # idle heartbeat
        description = headers.get("Description", "")
        if status in ("404", "408"):
            if self._requests:
                self._requests.popleft()
        elif status == "409":
            if "Consumer Deleted" in description or "Leadership Change" in description:
                log.info("%s: %s; recreating the consumer", self._stream, description)
                self.reset_after_reconnect()
                return
            if self._requests:
                self._requests.popleft()
        elif status == "503":
            # Nobody serves this consumer any more: in a cluster, the server that held it (an
            # ephemeral consumer has one replica) is gone. Asking again would be answered the
            # same way at once, in a busy loop; the consumer is recreated where reading stopped.
            log.warning("%s: no responders for the pull request; recreating the consumer", self._stream)
            self._requests.clear()
            self.reset_after_reconnect()
            return
        self._wake()

    # -- pulling --------------------------------------------------------------------------

    def _wake(self) -> None:
        self._pump_wakeup.set()

    async def _run_pump(self) -> None:
        # Ends when the reader closes (not by cancellation alone: Python 3.11's wait_for can
        # swallow a cancel that coincides with a wake-up, which would leave close() waiting).
        config = self._config
        while not self._closed:
            try:
                # The timeout doubles as the watchdog for requests lost in a reconnect.
                async with asyncio.timeout(config.expires):
                    await self._pump_wakeup.wait()
            except TimeoutError:
                pass
            self._pump_wakeup.clear()
            if self._paused or self._closed or not self._consumer:
                continue
            # A request outstanding much longer than it may wait was lost (e.g. in a reconnect).
            if self._requests and time.monotonic() - self._requested_at > config.expires * 2 + 1:
                self._requests.clear()
            while len(self._requests) < config.max_requests and (size := self._request_size()):
                await self._request(size)

    def _request_size(self) -> int:
        """How many records the next pull request may ask for; 0: none now (see the module
        docstring). A full batch must fit the record capacity, as many as fit the bytes."""
        config = self._config
        outstanding = sum(self._requests)
        if len(self._buffer) + outstanding + config.batch > config.capacity:
            return 0
        estimate = self._record_bytes
        if estimate is None:
            if outstanding:
                return 0  # the size records have is not known before the first arrives
            estimate = float(self._client.max_payload)  # until then, the largest there can be
        room = config.max_bytes - self._buffered_bytes - outstanding * estimate
        fit = min(config.batch, int(room // max(estimate, 1.0)))
        if fit < 1 and not self._buffer and not outstanding:
            return 1  # a record larger than max_bytes is still read, one at a time
        return max(fit, 0)

    async def _request(self, batch: int) -> None:
        body = json.dumps({"batch": batch, "expires": int(self._config.expires * 1e9)}).encode()
        self._requests.append(batch)
        self._requested_at = time.monotonic()
        try:
            await self._client.publish(
                f"$JS.API.CONSUMER.MSG.NEXT.{self._stream}.{self._consumer}",
                body,
                reply=f"{self._inbox}.{self._epoch}",
            )
        except Exception as exc:  # noqa: BLE001 - disconnected; the watchdog will ask again
            log.debug("%s: pull request failed: %s", self._stream, exc)
            self._requests.clear()

    async def _reseek(self) -> None:
        # Until it works: while the stream has no leader (a cluster electing one after a node
        # died) creating the consumer fails, and a reader without a consumer reads nothing.
        backoff = 0.25
        while not self._closed:
            try:
                # Buffered records are dropped by the seek and read again: simplest and in order.
                await self.seek(self._next_offset)
                return
            except Exception as exc:  # noqa: BLE001 - tried again after a pause
                log.warning("%s: recreating the consumer failed (%s); trying again in %.2fs", self._stream, exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _delete_consumer(self, name: str) -> None:
        try:
            await self._js.delete_consumer(self._stream, name)
        except Exception:
            log.debug("deleting consumer %s/%s failed", self._stream, name, exc_info=True)
