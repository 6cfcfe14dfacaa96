"""PartitionReader on a real server: order, seeking, a bounded buffer, compacting streams."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from bridges.naming import Naming
from bridges.transport.publisher import PipelinedPublisher
from bridges.transport.reader import PartitionReader, ReaderConfig, Record
from bridges.transport.topics import TopicRegistry, TopicSpec
from tables.errors import ClosedError
from testkit.workers import poll_until

pytestmark = pytest.mark.integration

DEADLINE = 30.0
SMALL = ReaderConfig(batch=10, capacity=30, max_requests=2, expires=1.0)


@dataclass
class Watched:
    """A reader, the records taken from it, and the most it ever held (seen by ``on_data``)."""

    reader: PartitionReader
    peak: int = 0
    peak_bytes: int = 0
    taken: list[Record] = field(default_factory=list)

    def on_data(self) -> None:
        self.peak = max(self.peak, self.reader.buffered)
        self.peak_bytes = max(self.peak_bytes, self.reader.buffered_bytes)

    def take(self, limit: int) -> list[Record]:
        records = self.reader.take(limit)
        self.taken.extend(records)
        return records

    async def take_until(self, count: int) -> list[Record]:
        """Take records as they arrive until ``count`` have been taken in all."""

        def enough() -> bool:
            self.take(count - len(self.taken))
            return len(self.taken) >= count

        await poll_until(enough, timeout=DEADLINE, what=f"{count} records")
        return self.taken


OpenReader = Callable[..., Awaitable[Watched]]


@pytest.fixture
async def open_reader(nc: Client, js: JetStreamContext) -> AsyncIterator[OpenReader]:
    opened: list[PartitionReader] = []

    async def open_(stream: str, filter_subject: str, offset: int, config: ReaderConfig = SMALL) -> Watched:
        watched: Watched

        def on_data() -> None:
            watched.on_data()

        reader = PartitionReader(
            nc, js, stream=stream, filter_subject=filter_subject, name=f"r{len(opened)}", on_data=on_data,
            config=config,
        )
        watched = Watched(reader)
        opened.append(reader)
        await reader.start(offset)
        reader.resume()
        return watched

    yield open_
    for reader in opened:
        await reader.close()


async def publish_all(nc: Client, subject: str, payloads: list[bytes]) -> list[int]:
    async with PipelinedPublisher(nc) as publisher:
        futures = [
            await publisher.publish(subject, payload, {"Nats-Msg-Id": uuid.uuid4().hex})
            for payload in payloads
        ]
        return [(await future).seq for future in futures]


@pytest.fixture
async def orders(registry: TopicRegistry, nc: Client, naming: Naming) -> list[int]:
    """Topic ``orders`` with one partition holding 20 messages, payloads b"1".."20"."""
    await registry.declare(TopicSpec("orders", 1))
    return await publish_all(nc, naming.subject("orders", 0), [b"%d" % i for i in range(1, 21)])


def offsets_and_payloads(records: list[Record]) -> list[tuple[int, bytes]]:
    return [(record.offset, record.msg.data) for record in records]


async def test_reads_from_a_position_in_order(open_reader: OpenReader, orders: list[int]) -> None:
    assert orders == list(range(1, 21))
    watched = await open_reader("FAUST_orders_0", "faust.orders.0", 5)
    records = await watched.take_until(16)
    assert offsets_and_payloads(records) == [(n, b"%d" % n) for n in range(5, 21)]
    assert watched.reader.position == 21
    assert watched.reader.highwater == 21
    assert watched.peak > 0, "on_data was never called"


async def test_take_hands_out_at_most_the_limit(open_reader: OpenReader, orders: list[int]) -> None:
    watched = await open_reader("FAUST_orders_0", "faust.orders.0", 1)
    await poll_until(lambda: watched.reader.buffered >= 20, timeout=DEADLINE, what="20 buffered")
    assert [r.offset for r in watched.take(3)] == [1, 2, 3]
    assert watched.reader.position == 4
    assert watched.take(0) == []


async def test_seek_backwards_and_forwards(open_reader: OpenReader, orders: list[int]) -> None:
    watched = await open_reader("FAUST_orders_0", "faust.orders.0", 1)
    await watched.take_until(20)
    reader = watched.reader
    await reader.seek(3)
    assert reader.position == 3
    watched.taken.clear()
    assert [r.offset for r in await watched.take_until(18)] == list(range(3, 21))
    await reader.seek(15)
    watched.taken.clear()
    assert offsets_and_payloads(await watched.take_until(6)) == [(n, b"%d" % n) for n in range(15, 21)]


async def test_messages_published_after_the_reader_started_arrive(
    open_reader: OpenReader, nc: Client, orders: list[int]
) -> None:
    watched = await open_reader("FAUST_orders_0", "faust.orders.0", 21)
    await publish_all(nc, "faust.orders.0", [b"late"])
    assert offsets_and_payloads(await watched.take_until(1)) == [(21, b"late")]


async def test_the_buffer_never_holds_more_than_capacity_and_refills_after_take(
    open_reader: OpenReader, registry: TopicRegistry, nc: Client, js: JetStreamContext
) -> None:
    total = 10 * SMALL.capacity
    await registry.declare(TopicSpec("bulk", 1))
    await publish_all(nc, "faust.bulk.0", [b"%d" % i for i in range(total)])
    watched = await open_reader("FAUST_bulk_0", "faust.bulk.0", 1)

    await poll_until(lambda: stopped_growing(js, "FAUST_bulk_0", watched), timeout=DEADLINE, what="fetching to stop")
    assert watched.reader.buffered <= SMALL.capacity
    assert watched.peak <= SMALL.capacity
    (info,) = await js.consumers_info("FAUST_bulk_0")
    assert info.num_pending > 0, "everything was fetched: no backpressure"

    held = watched.reader.buffered
    watched.take(SMALL.batch + 5)
    await poll_until(
        lambda: watched.reader.buffered > held - SMALL.batch - 5, timeout=DEADLINE, what="the buffer to refill"
    )
    records = await watched.take_until(total)
    assert [r.offset for r in records] == list(range(1, total + 1))
    assert watched.peak <= SMALL.capacity


async def test_a_compacting_reader_skips_the_fence_subject(
    open_reader: OpenReader, registry: TopicRegistry, js: JetStreamContext, naming: Naming
) -> None:
    await registry.declare(TopicSpec("tbl", 1, compacting=True))
    fence = naming.fence_subject("tbl", 0)
    await js.publish(fence, b"fence-1")  # seq 1
    await js.publish(naming.key_subject("tbl", 0, b"a"), b"A")  # seq 2
    await js.publish(naming.key_subject("tbl", 0, b"b"), b"B")  # seq 3
    await js.publish(fence, b"fence-2")  # seq 4
    await js.publish(naming.key_subject("tbl", 0, b"c"), b"C")  # seq 5
    watched = await open_reader("FAUST_tbl_0", naming.data_filter("tbl", 0, True), 1)
    records = await watched.take_until(3)
    assert offsets_and_payloads(records) == [(2, b"A"), (3, b"B"), (5, b"C")]
    assert all(r.msg.subject != fence for r in records)


async def test_close_removes_the_consumer_and_refuses_seeks(
    open_reader: OpenReader, js: JetStreamContext, orders: list[int]
) -> None:
    watched = await open_reader("FAUST_orders_0", "faust.orders.0", 1)
    assert len(await js.consumers_info("FAUST_orders_0")) == 1
    await watched.reader.close()
    assert await js.consumers_info("FAUST_orders_0") == []
    with pytest.raises(ClosedError):
        await watched.reader.seek(1)
    await watched.reader.close()


async def stopped_growing(js: JetStreamContext, stream: str, watched: Watched) -> bool:
    """The server has delivered all it was asked for and holds no open request: until take()
    makes room, nothing more can arrive."""
    (info,) = await js.consumers_info(stream)
    received = len(watched.taken) + watched.reader.buffered
    return watched.reader.buffered > 0 and info.num_waiting == 0 and info.delivered.consumer_seq == received


async def test_large_records_are_bounded_in_bytes_not_only_in_count(
    open_reader: OpenReader, registry: TopicRegistry, nc: Client, js: JetStreamContext
) -> None:
    """Ingest writes batch records of up to a megabyte: a buffer bounded by count alone would hold
    gigabytes while a worker catches up on a backlog."""
    size, total = 100_000, 60  # 6 MB stored: six times what the reader may hold
    config = ReaderConfig(batch=512, capacity=2048, max_requests=2, expires=1.0, max_bytes=1_000_000)
    await registry.declare(TopicSpec("batches", 1))
    await publish_all(nc, "faust.batches.0", [b"%04d" % i + b"x" * (size - 4) for i in range(total)])
    watched = await open_reader("FAUST_batches_0", "faust.batches.0", 1, config=config)
    await poll_until(lambda: stopped_growing(js, "FAUST_batches_0", watched), timeout=DEADLINE, what="fetching to stop")
    (info,) = await js.consumers_info("FAUST_batches_0")
    assert info.num_pending > 0, "everything was fetched: no backpressure by bytes"
    assert watched.peak_bytes <= config.max_bytes, f"held {watched.peak_bytes:,} B, more than {config.max_bytes:,}"
    records = await watched.take_until(total)
    assert [r.offset for r in records] == list(range(1, total + 1))
    assert [r.msg.data[:4] for r in records] == [b"%04d" % i for i in range(total)]
    assert watched.peak_bytes <= config.max_bytes + size  # the running size estimate may be a record off


async def test_a_record_larger_than_the_byte_bound_is_still_read(
    open_reader: OpenReader, registry: TopicRegistry, nc: Client
) -> None:
    config = ReaderConfig(batch=512, capacity=2048, max_requests=2, expires=1.0, max_bytes=50_000)
    payloads = [b"small-1", b"L" * 300_000, b"small-2", b"M" * 200_000, b"small-3"]
    await registry.declare(TopicSpec("mixed", 1))
    await publish_all(nc, "faust.mixed.0", payloads)
    watched = await open_reader("FAUST_mixed_0", "faust.mixed.0", 1, config=config)
    records = await watched.take_until(len(payloads))
    assert [r.msg.data for r in records] == payloads
