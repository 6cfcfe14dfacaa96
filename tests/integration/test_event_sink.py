"""The event sink on its own: topic layout, the 10-minute duplicate window, duplicates, states."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from nats.aio.client import Client

from bridges.naming import Naming
from bridges.public.event_sink import DEDUPE_WINDOW, EventSink, SinkResult, SinkState
from bridges.server import NatsServer
from bridges.transport.topics import TopicRegistry, TopicSpec
from tables.errors import BrokenError, ClosedError
from testkit.streams import events_stored, nats_client
from testkit.workers import poll_until

pytestmark = pytest.mark.integration

NAMING = Naming("faust")


@dataclass(frozen=True)
class Sample:
    """Anything with the four members of IngestEvent will do: the sink is typed by a Protocol."""

    event_id: str
    student_id: str
    type: str = "interaction"

    def to_json_bytes(self) -> bytes:
        return json.dumps({"event_id": self.event_id, "student_id": self.student_id}).encode()


@pytest.fixture
async def client(nats_server: NatsServer) -> AsyncIterator[Client]:
    async with nats_client(nats_server.url) as connection:
        yield connection


async def test_the_topic_is_created_with_the_contracts_duplicate_window(client: Client) -> None:
    async with EventSink(client, partitions=3) as sink:
        assert sink.partitions == 3
    for partition in range(3):
        info = await client.jetstream().stream_info(NAMING.stream("events", partition))
        assert info.config.duplicate_window == DEDUPE_WINDOW == 600


async def test_a_topic_a_worker_created_first_keeps_its_partitions_and_gets_the_wider_window(
    client: Client,
) -> None:
    registry = TopicRegistry(client.jetstream(), NAMING)
    await registry.start()
    await registry.declare(TopicSpec(name="events", partitions=2))  # the transport's 2-minute default
    js = client.jetstream()
    assert (await js.stream_info(NAMING.stream("events", 0))).config.duplicate_window == 120
    async with EventSink(client, partitions=8) as sink:
        assert sink.partitions == 2
        assert await sink.publish([Sample("a", "s1"), Sample("a", "s1")]) == SinkResult(1, 1)
    for partition in range(2):
        assert (await js.stream_info(NAMING.stream("events", partition))).config.duplicate_window == 600


async def test_identical_retries_and_repeats_within_a_call_are_reported_as_duplicates(client: Client) -> None:
    async with EventSink(client, partitions=4) as sink:
        batch = [Sample(f"e{n}", f"s{n % 5}") for n in range(50)]
        assert await sink.publish(batch) == SinkResult(50, 0)
        assert await sink.publish(batch) == SinkResult(0, 50), "the same call again: stored once"
        assert await sink.publish([Sample("x", "s1"), Sample("x", "s1"), Sample("x", "s2")]) == SinkResult(2, 1)
        # Another call overlapping the first is stored; the windows count each event_id once.
        assert await sink.publish([Sample(f"e{n}", f"s{n % 5}") for n in range(40, 60)]) == SinkResult(20, 0)
        assert await sink.publish([]) == SinkResult(0, 0)
    assert await events_stored(client) == 50 + 2 + 20


async def test_a_closed_sink_refuses_to_publish_or_restart(client: Client) -> None:
    sink = await EventSink(client).start()
    await sink.close()
    await sink.close()  # idempotent
    assert sink.state is SinkState.CLOSED
    with pytest.raises(ClosedError):
        await sink.publish([Sample("a", "s1")])
    with pytest.raises(ClosedError):
        await sink.start()


async def test_without_a_connection_publishing_fails_at_once(nats_server: NatsServer, client: Client) -> None:
    async with EventSink(client) as sink:
        await nats_server.kill()
        await poll_until(lambda: not sink.available, timeout=10, what="the disconnect to be seen")
        with pytest.raises(BrokenError, match="not connected"):
            await sink.publish([Sample("a", "s1")])
