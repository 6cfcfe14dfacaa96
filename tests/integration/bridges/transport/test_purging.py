"""Removing changelog records on a real server: by key below an offset, or everything below one,
never a later record and never the partition's fence."""

from __future__ import annotations

from typing import Any

import pytest
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from bridges.naming import Naming
from bridges.server import NatsServer
from bridges.transport.purging import ChangelogPurges
from bridges.transport.session import Fence
from tables.compaction import Purge
from testkit.producer import faust_producer

pytestmark = pytest.mark.integration

TOPIC = "tbl-changelog"


async def _stored(js: JetStreamContext, naming: Naming) -> list[tuple[str, bytes]]:
    """(subject, payload) of every message the partition's stream holds, in order."""
    info = await js.stream_info(naming.stream(TOPIC, 0))
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            msg = await js.get_msg(naming.stream(TOPIC, 0), seq)
        except NotFoundError:
            continue  # a purged sequence
        out.append((msg.subject, msg.data or b""))
    return out


async def _changelog(send: Any) -> Any:
    await send.app.producer.create_topic(TOPIC, 1, 1, compacting=True, config={"max_msgs_per_subject": 2})
    session = send.app.producer.transport.session
    subject = session.naming.fence_subject(TOPIC, 0)
    ack = await session.js.publish(subject, b"owner")
    session.fences[(TOPIC, 0)] = Fence(subject, int(ack.seq))
    return session


async def test_a_key_is_purged_below_an_offset_and_what_it_got_later_stays(
    nats_server: NatsServer, js: JetStreamContext, naming: Naming
) -> None:
    async with faust_producer(nats_server.url, partitions=1) as send:
        await _changelog(send)
        purges = ChangelogPurges(send.app.producer.transport.session)
        await send(TOPIC, b"v1", key=b"closed", partition=0)
        deletion = await send(TOPIC, None, key=b"closed", partition=0)
        await send(TOPIC, b"open", key=b"other", partition=0)
        await send(TOPIC, b"v2", key=b"closed", partition=0)  # written under the key later
        failed = await purges.purge_changelog(TOPIC, 0, [Purge("closed", deletion.offset + 1)])
        assert failed == []
        assert [payload for _, payload in await _stored(js, naming)] == [b"owner", b"open", b"v2"]
        assert await purges.changelog_records(TOPIC, 0) == 3


async def test_everything_below_an_offset_goes_but_the_fence(
    nats_server: NatsServer, js: JetStreamContext, naming: Naming
) -> None:
    async with faust_producer(nats_server.url, partitions=1) as send:
        await _changelog(send)
        purges = ChangelogPurges(send.app.producer.transport.session)
        for n in range(5):
            await send(TOPIC, f"old{n}".encode(), key=f"k{n}".encode(), partition=0)
        first = await send(TOPIC, b"rewritten", key=b"k0", partition=0)
        await send(TOPIC, b"marker", key=b"m", partition=0)
        assert await purges.purge_changelog(TOPIC, 0, [Purge(None, first.offset)]) == []
        stored = await _stored(js, naming)
        assert [payload for _, payload in stored] == [b"owner", b"rewritten", b"marker"]
        assert stored[0][0] == naming.fence_subject(TOPIC, 0)


async def test_a_purge_that_fails_is_handed_back(nats_server: NatsServer) -> None:
    async with faust_producer(nats_server.url, partitions=1) as send:
        await _changelog(send)
        purges = ChangelogPurges(send.app.producer.transport.session)
        await nats_server.stop()
        purge = Purge("k", 10)
        assert await purges.purge_changelog(TOPIC, 0, [purge]) == [purge]
        assert await purges.changelog_records(TOPIC, 0) is None
