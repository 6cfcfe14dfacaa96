"""faust's Producer on JetStream: pipelined, acknowledged, deduplicated sends.

``send()`` returns as soon as the message is handed to the connection; its future resolves with
faust's ``RecordMetadata`` (offset = stream sequence) when the stream acknowledges it. Sends to
a compacting (changelog) topic go to the key's subject, are last-value-wins per key under
retries, and — when this worker owns that changelog partition — state the partition's fence, so
a worker that was fenced off cannot overwrite the new owner's state.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections.abc import Awaitable, Mapping
from typing import Any, cast

from faust.exceptions import ProducerSendError
from faust.transport.producer import Producer as FaustProducer
from faust.transport.producer import ProducerBuffer
from faust.types import TP, RecordMetadata
from faust.types.core import HeadersArg
from mode.utils.times import Seconds, want_seconds

from bridges.transport.envelope import encode_headers
from bridges.transport.publisher import Ack
from bridges.transport.send_ledger import SendLedger
from bridges.transport.session import TransportSession, partition_for_key
from bridges.transport.topics import TopicSpec
from tables.errors import BrokenError, StreamsError

__all__ = ["Producer"]

log = logging.getLogger(__name__)


async def create_topic(
    self: Any,
    topic: str,
    partitions: int,
    replication: int,
    *,
    config: Mapping[str, Any] | None = None,
    timeout: Seconds = 30.0,
    retention: Seconds | None = None,
    compacting: bool | None = None,
    deleting: bool | None = None,
    ensure_created: bool = False,
) -> None:
    """faust's ``create_topic``, for both the producer and the consumer (their ``_session``)."""
    await declare_faust_topic(
        self._session, topic, partitions, config=config, retention=retention,
        compacting=compacting, deleting=deleting,
    )



class Producer(FaustProducer):
    """Producer for the ``nats://`` transport (see module docstring)."""

    def __post_init__(self) -> None:
        self._session: TransportSession = cast(Any, self.transport).session
        # Publish ids: unique per producer instance, so two processes never collide.
        self._id_prefix = secrets.token_hex(6)
        self._counter = itertools.count(1)
        self._round_robin: dict[str, itertools.count[int]] = {}
        self._acquired = False
        #: this producer's sends from their call to their ack: flush's barrier
        self._sends = SendLedger()

    async def on_start(self) -> None:
        await super().on_start()
        await self._session.acquire()
        self._acquired = True

    async def on_stop(self) -> None:
        # faust stops what failed to start too (NATS refused us): nothing to flush or release.
        if self._acquired:
            self._acquired = False
            try:
                await self._session.publisher.flush(timeout=30)
            except (TimeoutError, StreamsError) as exc:
                log.warning("stopping the producer with sends unacknowledged: %s", exc)
            await self._session.release()
        await super().on_stop()

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: HeadersArg | None,
        *,
        transactional_id: str | None = None,
    ) -> Awaitable[RecordMetadata]:
        # Numbered from the call on: a flush must cover a send still waiting for its topic or
        # for room in flight, not only those the publisher has taken.
        number = self._sends.begin()
        try:
            metadata = await self._publish(topic, key, value, partition, timestamp, headers)
        except BaseException:
            self._sends.settle(number)
            raise
        metadata.add_done_callback(lambda _: self._sends.settle(number))
        return metadata

    async def _publish(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: HeadersArg | None,
    ) -> asyncio.Future[RecordMetadata]:
        spec = await self._spec(topic)
        if partition is None:
            partition = self._partition(spec, key)
        elif not 0 <= partition < spec.partitions:
            raise ProducerSendError(
                f"partition {partition} out of range for topic {topic!r} ({spec.partitions} partitions)"
            )
        naming = self._session.naming
        nats_headers = encode_headers(
            msg_id=f"{self._id_prefix}-{next(self._counter)}",
            key=key,
            value_is_null=value is None,
            timestamp=timestamp,
            headers=cast(Any, headers),
        )
        supersede_key: str | None = None
        fence_name: str | None = None
        if spec.compacting:
            subject = naming.key_subject(topic, partition, key)
            supersede_key = subject
            fence = self._session.fences.get((topic, partition))
            if fence is not None:
                nats_headers.update(fence.headers())
                fence_name = f"{topic}[{partition}]"
        else:
            subject = naming.subject(topic, partition)
        try:
            ack_future = await self._session.publisher.publish(
                subject, value or b"", nats_headers, supersede_key=supersede_key, fence=fence_name
            )
        except StreamsError as exc:
            raise ProducerSendError(f"send to {topic}[{partition}] failed: {exc}") from exc
        return _metadata_future(ack_future, topic, partition, timestamp)

    async def send_and_wait(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: HeadersArg | None,
        *,
        transactional_id: str | None = None,
    ) -> RecordMetadata:
        future = await self.send(topic, key, value, partition, timestamp, headers)
        return await future

    async def flush(self) -> None:
        """Until everything sent before the call is acknowledged (or failed): the messages in
        faust's buffer, this producer's sends, and anything else the session's publisher sent.

        faust flushes before committing offsets, at the start of a recovery and on stop, for
        what it produced so far; sends made during the flush are not waited for (a barrier:
        :mod:`bridges.transport.send_ledger`), so partitions that keep producing meanwhile do
        not hold it. faust's own buffer flush drains the buffer until nothing comes for 0.1 s.
        """
        buffer = cast(ProducerBuffer, self.buffer)
        # The buffer's messages, sent in order by its task; each resolves once acknowledged.
        buffered = list(buffer.pending._queue)  # type: ignore[attr-defined]  # read as faust's buffer.size does
        mine = self._sends.mark()
        others = self._session.publisher.mark() if self._acquired else None
        if buffered and buffer.state != "running":
            await buffer.flush()  # raises as faust's does: nothing will send them
        elif buffered:
            await buffer.wait_many(buffered)  # or until the buffer stops or crashes
        await self._sends.flush(mine)
        if others is not None:  # faust flushes on stop even after a start that never connected
            await self._session.publisher.flush(mark=others)

    create_topic = create_topic  # faust asks the producer and the consumer alike

    def key_partition(self, topic: str, key: bytes) -> TP:
        spec = self._session.registry.cached(topic)
        if spec is None:
            raise BrokenError(f"topic {topic!r} is not known yet: declare it first")
        return TP(topic, self._partition(spec, key))

    def supports_headers(self) -> bool:
        return True

    # -- internals ------------------------------------------------------------------------

    async def _spec(self, topic: str) -> TopicSpec:
        registry = self._session.registry
        spec = registry.cached(topic) or await registry.lookup(topic)
        if spec is None:
            # faust sends to topics it has not declared (a topic object declared lazily);
            # create it as faust would: default partitions, not compacting.
            spec = await self._session.declare_topic(
                topic, self.app.conf.topic_partitions, compacting=False, retention=None
            )
        return spec

    def _partition(self, spec: TopicSpec, key: bytes | None) -> int:
        if key is None:
            counter = self._round_robin.setdefault(spec.name, itertools.count())
            return next(counter) % spec.partitions
        custom = self.partitioner
        if custom is not None:
            return int(custom(key, list(range(spec.partitions)), list(range(spec.partitions))))
        return partition_for_key(key, spec.partitions)


async def declare_faust_topic(
    session: TransportSession,
    topic: str,
    partitions: int,
    *,
    config: Mapping[str, Any] | None,
    retention: Seconds | None,
    compacting: bool | None,
    deleting: bool | None,
) -> TopicSpec:
    """Declare a topic from faust's ``create_topic`` arguments.

    ``config`` may carry ``max_msgs_per_subject`` (messages kept per key of a compacting topic).
    Retention applies when faust asks for a deleting topic (windowed table changelogs).
    """
    config = dict(config or {})
    max_per_key = int(config.pop("max_msgs_per_subject", 1))
    if config:
        log.debug("topic %r: ignoring Kafka topic configs %s", topic, sorted(config))
    seconds = want_seconds(retention) if retention and (deleting or not compacting) else None
    return await session.declare_topic(
        topic,
        partitions,
        compacting=bool(compacting),
        retention=seconds,
        max_per_key=max_per_key,
    )


def _metadata_future(
    ack_future: asyncio.Future[Ack], topic: str, partition: int, timestamp: float | None
) -> asyncio.Future[RecordMetadata]:
    """Translate the publisher's ack into faust's RecordMetadata."""
    result: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
    tp = TP(topic, partition)

    def done(future: asyncio.Future[Ack]) -> None:
        if result.done():
            return
        exc = future.exception()
        if exc is not None:
            error = ProducerSendError(f"send to {topic}[{partition}] failed: {exc}")
            error.__cause__ = exc  # a FencedError must stay recognisable (see CommittingConsumer._commit_offsets)
            result.set_exception(error)
            return
        ack = future.result()
        result.set_result(
            RecordMetadata(
                topic=topic,
                partition=partition,
                topic_partition=tp,
                offset=ack.seq,
                timestamp=timestamp,
                timestamp_type=0,
            )
        )

    ack_future.add_done_callback(done)
    return result
