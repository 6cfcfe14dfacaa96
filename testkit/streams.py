"""Reading back what landed in JetStream, so tests check stored messages rather than log lines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from bridges.naming import Naming

__all__ = ["PARTITIONS", "events_stored", "nats_client", "read_stream", "stream_count"]

#: partitions of the events topic in the tests' web processes
PARTITIONS = 4


@asynccontextmanager
async def nats_client(url: str) -> AsyncIterator[Client]:
    client = await nats.connect(url)
    try:
        yield client
    finally:
        if client.is_connected:
            await client.drain()
        else:  # a test stopped the server: nothing to drain into
            await client.close()


async def stream_count(client: Client, stream: str) -> int:
    """Messages stored in ``stream`` (0 when it does not exist)."""
    try:
        info = await client.jetstream().stream_info(stream)
    except NotFoundError:
        return 0
    return int(info.state.messages)


async def events_stored(client: Client, prefix: str = "faust") -> int:
    """Messages in all partitions of the events topic."""
    naming = Naming(prefix)
    counts = [await stream_count(client, naming.stream("events", p)) for p in range(PARTITIONS)]
    return sum(counts)


async def read_stream(client: Client, stream: str, *, subject: str | None = None) -> list[Msg]:
    """Every message of ``stream`` (or of one subject in it), in order, without acking anything."""
    js = client.jetstream()
    info = await js.stream_info(stream)
    if info.state.messages == 0:
        return []
    sub = await js.subscribe(
        subject or ">",
        stream=stream,
        ordered_consumer=True,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    try:
        messages = []
        last = info.state.last_seq
        while True:
            msg = await sub.next_msg(timeout=5)
            messages.append(msg)
            if msg.metadata.sequence.stream >= last or msg.metadata.num_pending == 0:
                return messages
    finally:
        await sub.unsubscribe()
