"""PipelinedPublisher's ``serial_fences``: sends stating one fence go out one at a time.

A clustered (replicated) stream refuses a second write with an expected-last-subject-sequence on
a subject while the first one's proposal is in flight ("wrong last sequence", which would read as
a fence); so on replicated streams the sends of one fence are serialised, and everything else
stays pipelined. Same fake server and fake clock as ``test_publisher.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from nats.aio.client import Client

from bridges.transport.publisher import Ack, PipelinedPublisher
from tables.errors import FencedError
from testkit.workers import poll_until
from tests.unit.bridges.fake_nats import NO_RESPONDERS, FakeMonotonic, FakeNats, ack_body, error_body

FENCE_A, FENCE_B = "tbl-changelog[0]", "tbl-changelog[1]"
DEADLINE = 10.0


@pytest.fixture
async def publisher(fake: FakeNats, clock: FakeMonotonic) -> AsyncIterator[PipelinedPublisher]:
    publisher = await PipelinedPublisher(
        cast(Client, fake), ack_timeout=0.2, give_up_after=60.0, serial_fences=True
    ).start()
    yield publisher
    await publisher.close(timeout=0)


async def send(publisher: PipelinedPublisher, n: int, **kwargs: Any) -> asyncio.Future[Ack]:
    return await publisher.publish(f"s.{n}", b"v%d" % n, {"Nats-Msg-Id": f"id-{n}"}, **kwargs)


async def sent_count(fake: FakeNats, n: int) -> None:
    await poll_until(lambda: len(fake.sent) >= n, timeout=DEADLINE, interval=0.01, what=f"{n} publishes")


async def test_sends_of_one_fence_go_out_one_at_a_time_in_order(
    publisher: PipelinedPublisher, fake: FakeNats
) -> None:
    futures = [await send(publisher, n, fence=FENCE_A, supersede_key="k") for n in range(3)]
    assert [s.msg_id for s in fake.sent] == ["id-0"]
    for n in range(3):
        await sent_count(fake, n + 1)
        assert fake.sent[n].msg_id == f"id-{n}"
        await fake.reply(fake.sent[n], ack_body("S", 10 + n))
    assert [await asyncio.wait_for(f, DEADLINE) for f in futures] == [Ack("S", 10 + n, False) for n in range(3)]
    assert len(fake.sent) == 3


async def test_other_fences_and_unfenced_sends_are_not_held_back(
    publisher: PipelinedPublisher, fake: FakeNats
) -> None:
    await send(publisher, 1, fence=FENCE_A)
    await send(publisher, 2, fence=FENCE_A)
    await send(publisher, 3, fence=FENCE_B)
    await send(publisher, 4)
    assert [s.msg_id for s in fake.sent] == ["id-1", "id-3", "id-4"]


async def test_a_refused_send_settles_with_its_own_error_and_the_next_one_goes_out(
    publisher: PipelinedPublisher, fake: FakeNats
) -> None:
    first = await send(publisher, 1, fence=FENCE_A)
    second = await send(publisher, 2, fence=FENCE_A)
    await fake.reply(fake.sent[0], error_body(400, 10071, "wrong last sequence: 3"))
    with pytest.raises(FencedError):
        await asyncio.wait_for(first, DEADLINE)
    await sent_count(fake, 2)
    await fake.reply(fake.sent[1], ack_body("S", 4))
    assert await asyncio.wait_for(second, DEADLINE) == Ack("S", 4, False)


async def test_an_unavailable_first_send_is_retried_while_a_newer_send_of_its_key_waits(
    publisher: PipelinedPublisher, fake: FakeNats, clock: FakeMonotonic
) -> None:
    # Pipelined, the older send would be parked behind the newer one; serialised, the newer one
    # waits behind the older, so the older must be retried — or neither would ever settle.
    older = await send(publisher, 1, fence=FENCE_A, supersede_key="k")
    newer = await send(publisher, 2, fence=FENCE_A, supersede_key="k")
    await fake.reply(fake.sent[0], b"", headers=NO_RESPONDERS)
    clock.advance(1.0)
    await sent_count(fake, 2)
    assert [s.msg_id for s in fake.sent] == ["id-1", "id-1"]
    await fake.reply(fake.sent[1], ack_body("S", 5))
    assert await asyncio.wait_for(older, DEADLINE) == Ack("S", 5, False)
    await sent_count(fake, 3)
    await fake.reply(fake.sent[2], ack_body("S", 6))
    assert await asyncio.wait_for(newer, DEADLINE) == Ack("S", 6, False)
