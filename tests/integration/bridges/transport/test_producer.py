"""faust's Producer on the nats:// transport: placement, the envelope on the wire, fences."""

from __future__ import annotations

from typing import Any, cast

import pytest
from faust.exceptions import ProducerSendError
from nats.js import JetStreamContext

from bridges.naming import Naming
from bridges.server import NatsServer
from bridges.transport.envelope import HDR_NULL, HDR_TS, decode_key, decode_user_headers
from bridges.transport.session import Fence, TransportSession, partition_for_key
from testkit.producer import faust_producer

pytestmark = pytest.mark.integration


def session_of(send: Any) -> TransportSession:
    return cast(TransportSession, send.app.producer.transport.session)


@pytest.mark.parametrize(
    ("key", "value", "headers"),
    [
        pytest.param(b"student-1", b'{"n":1}', [("trace", b"t1"), ("trace", b"t2")], id="key-value-headers"),
        pytest.param(b"", b"", None, id="empty-key-and-empty-value"),
        pytest.param(None, None, None, id="no-key-and-none-value"),
    ],
)
async def test_a_send_lands_where_its_metadata_says_with_its_envelope(
    nats_server: NatsServer,
    js: JetStreamContext,
    naming: Naming,
    key: bytes | None,
    value: bytes | None,
    headers: list[tuple[str, bytes]] | None,
) -> None:
    async with faust_producer(nats_server.url, partitions=4) as send:
        meta = await send("events", value, key=key, timestamp=1_714_557_600.125, headers=headers)
    if key is not None:
        assert meta.partition == partition_for_key(key, 4)
    msg = await js.get_msg(naming.stream("events", meta.partition), meta.offset)
    assert (msg.data or b"") == (value or b"")  # nats-py's get_msg gives None for an empty payload
    assert decode_key(msg.headers) == key
    assert decode_user_headers(msg.headers) == (headers or [])
    assert float(msg.headers[HDR_TS]) == 1_714_557_600.125
    assert (HDR_NULL in msg.headers) == (value is None)


async def test_a_partition_out_of_range_is_refused(nats_server: NatsServer) -> None:
    async with faust_producer(nats_server.url, partitions=2) as send:
        with pytest.raises(ProducerSendError, match="out of range"):
            await send("events", b"v", partition=2)


async def test_a_fenced_off_producer_cannot_write_its_old_changelog_partition(nats_server: NatsServer) -> None:
    async with faust_producer(nats_server.url) as old, faust_producer(nats_server.url) as new:
        await old.app.producer.create_topic("tbl-changelog", 1, 1, compacting=True)
        for send in (old, new):
            session = session_of(send)
            subject = session.naming.fence_subject("tbl-changelog", 0)
            ack = await session.js.publish(subject, b"owner")
            session.fences[("tbl-changelog", 0)] = Fence(subject, int(ack.seq))
        await new("tbl-changelog", b"new", key=b"k", partition=0)
        with pytest.raises(ProducerSendError, match=r"tbl-changelog\[0\].*fenced"):
            await old("tbl-changelog", b"zombie", key=b"k", partition=0)
