"""Reading back what landed in JetStream, so tests check stored messages rather than log lines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from bridges.naming import Naming
from bridges.transport.envelope import HDR_TS
from tables.batch import decode_record

__all__ = ["PARTITIONS", "StoredEvent", "events_stored", "nats_client", "read_stream", "stored_events", "stream_count"]

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


@dataclass(frozen=True)
class StoredEvent:
    """One event as the events topic holds it: in a record (``msg``) of ``partition``."""

    partition: int
    event: dict[str, Any]
    #: when the platform first stored it: carried by its batch, else the record's stored time
    arrived_at: float
    msg: Msg


async def stored_events(client: Client, prefix: str = "faust") -> list[StoredEvent]:
    """Every event in the events topic, partition by partition, in order (batches unpacked)."""
    naming = Naming(prefix)
    out = []
    for partition in range(PARTITIONS):
        stream = naming.stream("events", partition)
        if not await stream_count(client, stream):
            continue
        for msg in await read_stream(client, stream):
            stored_at = msg.metadata.timestamp.timestamp()
            raw_ts = (msg.headers or {}).get(HDR_TS)
            for event, arrived_at in decode_record(msg.data, float(raw_ts) if raw_ts else stored_at).events:
                out.append(StoredEvent(partition, event, arrived_at, msg))
    return out


async def events_stored(client: Client, prefix: str = "faust") -> int:
    """Events in all partitions of the events topic (each batch record counts its events)."""
    return len(await stored_events(client, prefix))


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
