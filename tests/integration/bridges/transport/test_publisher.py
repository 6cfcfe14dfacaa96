"""PipelinedPublisher against a real server: real acks, deduplication, retries, backpressure."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from bridges.transport.publisher import Ack, PipelinedPublisher
from bridges.transport.topics import TopicRegistry, TopicSpec
from testkit.workers import poll_until

pytestmark = pytest.mark.integration

DEADLINE = 30.0


def msg_id() -> dict[str, str]:
    return {"Nats-Msg-Id": uuid.uuid4().hex}


async def test_acks_carry_the_stream_and_its_sequence(nc: Client, registry: TopicRegistry) -> None:
    await registry.declare(TopicSpec("orders", 2))
    async with PipelinedPublisher(nc) as publisher:
        first = await publisher.publish("faust.orders.1", b"a", msg_id())
        second = await publisher.publish("faust.orders.1", b"b", msg_id())
        assert await asyncio.wait_for(first, DEADLINE) == Ack("FAUST_orders_1", 1, False)
        assert await asyncio.wait_for(second, DEADLINE) == Ack("FAUST_orders_1", 2, False)


async def test_a_repeated_msg_id_is_stored_once(nc: Client, js: JetStreamContext, registry: TopicRegistry) -> None:
    await registry.declare(TopicSpec("orders", 1))
    headers = msg_id()
    async with PipelinedPublisher(nc) as publisher:
        first = await asyncio.wait_for(await publisher.publish("faust.orders.0", b"a", headers), DEADLINE)
        again = await asyncio.wait_for(await publisher.publish("faust.orders.0", b"a", dict(headers)), DEADLINE)
    assert (again.stream, again.seq) == (first.stream, first.seq)
    assert (await js.stream_info("FAUST_orders_0")).state.messages == 1


async def test_many_sends_with_little_room_all_land_in_order(
    nc: Client, js: JetStreamContext, registry: TopicRegistry
) -> None:
    await registry.declare(TopicSpec("orders", 1))
    async with PipelinedPublisher(nc, max_in_flight=8) as publisher:
        futures = [await publisher.publish("faust.orders.0", b"%d" % i, msg_id()) for i in range(500)]
        assert publisher.in_flight <= 8
        await publisher.flush(timeout=DEADLINE)
    assert [f.result().seq for f in futures] == list(range(1, 501))
    last = await js.get_last_msg("FAUST_orders_0", "faust.orders.0")
    assert (last.seq, last.data) == (500, b"499")


async def test_a_send_before_its_stream_exists_lands_once_the_stream_is_created(
    nc: Client, registry: TopicRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bridges.transport.publisher")
    async with PipelinedPublisher(nc) as publisher:
        future = await publisher.publish("faust.orders.0", b"early", msg_id())
        # The server answered "no responders" and the publisher scheduled a retry.
        await poll_until(lambda: "will be retried" in caplog.text, timeout=DEADLINE, what="a 503 reply")
        assert not future.done()
        await registry.declare(TopicSpec("orders", 1))
        assert await asyncio.wait_for(future, DEADLINE) == Ack("FAUST_orders_0", 1, False)


async def test_a_repeated_msg_id_is_acked_as_a_duplicate(nc: Client, registry: TopicRegistry) -> None:
    await registry.declare(TopicSpec("orders", 1))
    headers = msg_id()
    async with PipelinedPublisher(nc) as publisher:
        first = await asyncio.wait_for(await publisher.publish("faust.orders.0", b"a", headers), DEADLINE)
        again = await asyncio.wait_for(await publisher.publish("faust.orders.0", b"a", dict(headers)), DEADLINE)
    assert first == Ack("FAUST_orders_0", 1, False)
    assert again == Ack("FAUST_orders_0", 1, True)
