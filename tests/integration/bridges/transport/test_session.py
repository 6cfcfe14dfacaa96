"""Changelog fences end to end: two owners of one compacting partition, the older one fenced off.

The fence is written the way the consumer writes it when it takes a changelog partition: a marker
on the partition's fence subject, whose sequence every later write of that owner expects
(:meth:`bridges.transport.session.Fence.headers`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from bridges.connection import ConnectionSettings
from bridges.server import NatsServer
from bridges.transport.envelope import encode_headers
from bridges.transport.options import TransportOptions
from bridges.transport.publisher import Ack
from bridges.transport.session import Fence, TransportSession
from tables.errors import ClosedError, FencedError

pytestmark = pytest.mark.integration

TOPIC = "app-tbl-changelog"
RESOURCE = f"{TOPIC}[0]"
DEADLINE = 30.0


@pytest.fixture
async def sessions(nats_server: NatsServer) -> AsyncIterator[tuple[TransportSession, TransportSession]]:
    settings = ConnectionSettings.from_urls(nats_server.url, connect_deadline=20)
    old, new = (TransportSession(settings, TransportOptions(), app_id) for app_id in ("old", "new"))
    pair = (old, new)
    for session in pair:
        await session.acquire()
    await pair[0].declare_topic(TOPIC, 1, compacting=True, retention=None)
    yield pair
    for session in pair:
        await session.release()


async def take_over(session: TransportSession) -> Fence:
    """Write the partition's fence marker, as a new owner does, and keep the fence."""
    subject = session.naming.fence_subject(TOPIC, 0)
    ack = await session.js.publish(subject, f'{{"owner":"{session.app_id}"}}'.encode())
    fence = Fence(subject, int(ack.seq))
    session.fences[(TOPIC, 0)] = fence
    return fence


async def write(session: TransportSession, fence: Fence, key: bytes, value: bytes) -> Ack:
    subject = session.naming.key_subject(TOPIC, 0, key)
    headers = encode_headers(msg_id=uuid.uuid4().hex, key=key, value_is_null=False, timestamp=None, headers=None)
    headers.update(fence.headers())
    future = await session.publisher.publish(subject, value, headers, supersede_key=subject, fence=RESOURCE)
    return await asyncio.wait_for(future, DEADLINE)


async def test_the_fenced_off_owner_cannot_write_and_the_new_owner_can(
    sessions: tuple[TransportSession, TransportSession],
) -> None:
    old, new = sessions
    old_fence = await take_over(old)
    await write(old, old_fence, b"k", b"old-1")
    await write(old, old_fence, b"k", b"old-2")  # its own writes do not move its fence
    new_fence = await take_over(new)
    assert new_fence.sequence > old_fence.sequence
    await write(new, new_fence, b"k", b"new-1")
    for key in (b"k", b"another-key"):
        with pytest.raises(FencedError) as caught:
            await write(old, old_fence, key, b"zombie")
        assert caught.value.resource == RESOURCE
    stream = new.naming.stream(TOPIC, 0)
    last = await new.js.get_last_msg(stream, new.naming.key_subject(TOPIC, 0, b"k"))
    assert last.data == b"new-1"
    assert old.publisher.in_flight == 0


async def test_resources_are_closed_after_the_last_release(nats_server: NatsServer) -> None:
    session = TransportSession(ConnectionSettings.from_urls(nats_server.url), TransportOptions(), "app")
    await session.acquire()
    await session.acquire()
    client = session.client
    await session.release()
    assert client.is_connected, "closed while still in use"
    await session.release()
    assert client.is_closed
    with pytest.raises(ClosedError):
        session.publisher  # noqa: B018 - the property raises
    await session.release()  # one release too many is harmless
