"""Flushes on a real server wait for what was sent before them, not for what keeps coming.

faust flushes the producer before each offset commit and at the start of a recovery, while the
partitions a member keeps go on producing (bridges/transport/send_ledger.py). The publisher's
acks are given by the test here — a core NATS subscriber stands in for the stream — so which
sends a flush waited for is seen, not timed.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from bridges.naming import Naming
from bridges.server import NatsServer
from bridges.transport.publisher import PipelinedPublisher
from testkit.producer import faust_producer

pytestmark = pytest.mark.integration

DEADLINE = 30.0


class HeldAcks:
    """A stand-in stream on ``held.>`` that acknowledges only when told to."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self.received: asyncio.Queue[Msg] = asyncio.Queue()
        self._seq = 0

    async def start(self) -> HeldAcks:
        await self._nc.subscribe("held.>", cb=self.received.put)
        return self

    async def ack(self, count: int) -> list[bytes]:
        """Acknowledge the next ``count`` messages received; their payloads."""
        payloads = []
        for _ in range(count):
            msg = await asyncio.wait_for(self.received.get(), DEADLINE)
            self._seq += 1
            await self._nc.publish(msg.reply, b'{"stream":"HELD","seq":%d}' % self._seq)
            payloads.append(msg.data)
        return payloads


async def _turns(n: int = 20) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_a_flush_returns_once_the_sends_before_it_are_acked_while_later_ones_wait(nc: Client) -> None:
    acks = await HeldAcks(nc).start()
    async with PipelinedPublisher(nc, ack_timeout=DEADLINE * 2) as publisher:
        async def send(payload: bytes) -> asyncio.Future:
            return await publisher.publish("held.x", payload, {"Nats-Msg-Id": uuid.uuid4().hex})

        before = [await send(b"before-%d" % i) for i in range(3)]
        flush = asyncio.create_task(publisher.flush())
        await asyncio.sleep(0)  # the flush has begun
        after = [await send(b"after-%d" % i) for i in range(3)]
        assert await acks.ack(2) == [b"before-0", b"before-1"]
        await asyncio.wait_for(asyncio.gather(*before[:2]), DEADLINE)
        await _turns()
        assert not flush.done()  # before-2 is not acked yet
        assert await acks.ack(1) == [b"before-2"]
        await asyncio.wait_for(flush, DEADLINE)  # not waiting for after-*, which nobody acks yet
        assert all(future.done() for future in before)
        assert not any(future.done() for future in after)
        await acks.ack(3)
        await asyncio.wait_for(asyncio.gather(*after), DEADLINE)


async def test_a_producer_flush_is_not_held_by_sends_that_go_on_and_covers_the_buffer(
    nats_server: NatsServer, js: JetStreamContext, naming: Naming
) -> None:
    cap = 20_000  # sends the feeder makes at most: a flush held by them would end only here
    async with faust_producer(nats_server.url, partitions=1) as send:
        app = send.app
        topic = app.topic("flushed", partitions=1)
        await topic.maybe_declare()
        buffered = [topic.send_soon(key=b"k", value=b"%d" % i) for i in range(300)]
        fed = 0

        async def feed() -> None:
            nonlocal fed
            while fed < cap:
                topic.send_soon(key=b"k", value=b"later")
                fed += 1
                await asyncio.sleep(0)

        feeder = asyncio.create_task(feed())
        try:
            await asyncio.sleep(0)
            await asyncio.wait_for(app.producer.flush(), DEADLINE)
            assert fed < cap
            assert all(future.done() and future.exception() is None for future in buffered)
        finally:
            feeder.cancel()
        await app.producer.flush()  # the feeder's sends too, before the producer closes
        stream = await js.stream_info(naming.stream("flushed", 0))
        assert stream.state.messages >= len(buffered)
