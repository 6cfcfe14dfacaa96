"""PipelinedPublisher's ``guard``: a send goes out, first or again, only while its guard allows.

What the lease fence of final results relies on: the check happens right before the message is
handed to the client — after a wait for room in flight, and before every resend — so neither a
send that queued behind backpressure nor a resend after a lost ack outlives the lease. Same fake
server and fake clock as ``test_publisher.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from nats.aio.client import Client

from bridges.transport.publisher import Ack, PipelinedPublisher, Withheld
from testkit.workers import poll_until
from tests.unit.bridges.fake_nats import FakeMonotonic, FakeNats, ack_body

ACK_TIMEOUT = 0.2
PAST_TIMEOUT = ACK_TIMEOUT * 1.5
DEADLINE = 10.0


class Switch:
    """A guard the test turns on and off, counting how often it was asked."""

    def __init__(self, on: bool = True) -> None:
        self.on = on
        self.asked = 0

    def __call__(self) -> bool:
        self.asked += 1
        return self.on


@pytest.fixture
async def publisher(fake: FakeNats, clock: FakeMonotonic) -> AsyncIterator[PipelinedPublisher]:
    publisher = await PipelinedPublisher(
        cast(Client, fake), ack_timeout=ACK_TIMEOUT, give_up_after=60.0, max_in_flight=1
    ).start()
    yield publisher
    await publisher.close(timeout=0)


async def send(publisher: PipelinedPublisher, n: int, **kwargs: Any) -> asyncio.Future[Ack]:
    return await publisher.publish(f"s.{n}", b"v%d" % n, {"Nats-Msg-Id": f"id-{n}"}, **kwargs)


async def test_a_send_whose_guard_allows_it_goes_out_and_is_acknowledged(
    publisher: PipelinedPublisher, fake: FakeNats
) -> None:
    guard = Switch()
    future = await send(publisher, 1, guard=guard)
    await fake.reply(fake.sent[0], ack_body("S", 1))
    assert await asyncio.wait_for(future, DEADLINE) == Ack("S", 1, False)
    assert guard.asked == 1


async def test_a_send_whose_guard_refuses_is_not_sent_and_fails_withheld(
    publisher: PipelinedPublisher, fake: FakeNats
) -> None:
    future = await send(publisher, 1, guard=Switch(on=False))
    with pytest.raises(Withheld) as refused:
        await future
    assert (refused.value.subject, refused.value.resend) == ("s.1", False)
    assert fake.sent == []
    assert publisher.in_flight == 0


async def test_the_guard_is_asked_after_waiting_for_room_not_before(
    publisher: PipelinedPublisher, fake: FakeNats
) -> None:
    await send(publisher, 1)  # max_in_flight=1: the next send waits for this ack
    guard = Switch()
    waiting = asyncio.create_task(send(publisher, 2, guard=guard))
    await asyncio.sleep(0)  # one turn: the task blocks on the full pipeline
    assert not waiting.done() and guard.asked == 0
    guard.on = False  # e.g. the lease lapsed while the send queued
    await fake.reply(fake.sent[0], ack_body("S", 1))
    with pytest.raises(Withheld):
        await asyncio.wait_for(await waiting, DEADLINE)
    assert [s.msg_id for s in fake.sent] == ["id-1"]


async def test_a_resend_after_the_ack_timeout_is_withheld_when_the_guard_refuses_then(
    publisher: PipelinedPublisher, fake: FakeNats, clock: FakeMonotonic
) -> None:
    guard = Switch()
    future = await send(publisher, 1, guard=guard)
    guard.on = False
    clock.advance(PAST_TIMEOUT)  # the first attempt's ack is lost: a resend would be due
    with pytest.raises(Withheld) as refused:
        await asyncio.wait_for(future, DEADLINE)
    # The first attempt did go out: whether it was stored is unknown, and the error says so.
    assert refused.value.resend is True
    assert [s.msg_id for s in fake.sent] == ["id-1"]
    assert publisher.in_flight == 0


async def test_a_resend_the_guard_allows_goes_out_with_the_same_msg_id(
    publisher: PipelinedPublisher, fake: FakeNats, clock: FakeMonotonic
) -> None:
    guard = Switch()
    future = await send(publisher, 1, guard=guard)
    clock.advance(PAST_TIMEOUT)
    await poll_until(lambda: len(fake.sent) == 2, timeout=DEADLINE, interval=0.01, what="the resend")
    assert [s.msg_id for s in fake.sent] == ["id-1", "id-1"] and guard.asked == 2
    await fake.reply(fake.sent[1], ack_body("S", 1))
    assert await asyncio.wait_for(future, DEADLINE) == Ack("S", 1, False)
