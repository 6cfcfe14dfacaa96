"""PipelinedPublisher against an in-memory NATS client: acks, errors, retries, backpressure, close.

The test plays the server through :class:`FakeNats` and moves the publisher's clock by hand: the
publisher's ``time`` module is replaced by :class:`FakeMonotonic`, so nothing times out unless a
test says so (patching ``time.monotonic`` itself would stop the event loop's clock too). The
publisher's sweeper still wakes on the real loop every 50 ms; what a sweep does is awaited with a
deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest
from nats.aio.client import Client

from bridges.transport.publisher import Ack, PipelinedPublisher, PublisherState
from tables.errors import BrokenError, ClosedError, FencedError, StorageFull
from testkit.workers import poll_until
from tests.unit.bridges.fake_nats import NO_RESPONDERS, FakeMonotonic, FakeNats, ack_body, error_body

#: small, so the sweeper wakes every 50 ms of real time; the fake clock decides what is due
ACK_TIMEOUT = 0.2
#: how long the publisher waits before its first retry after a "no responders" reply
FIRST_RETRY_DELAY = 0.2
#: clock steps clear of float rounding: PAST_TIMEOUT makes a send due; one HALF_TIMEOUT does not, two do
PAST_TIMEOUT = ACK_TIMEOUT * 1.5
HALF_TIMEOUT = ACK_TIMEOUT * 0.6
DEADLINE = 10.0
WRONG_LAST_SEQUENCE = error_body(400, 10071, "wrong last sequence: 3")

StartPublisher = Callable[..., Awaitable[PipelinedPublisher]]


@pytest.fixture
async def start_publisher(fake: FakeNats, clock: FakeMonotonic) -> AsyncIterator[StartPublisher]:
    """Start publishers on the fake client; each is closed when the test ends."""
    started: list[PipelinedPublisher] = []

    async def start(**kwargs: Any) -> PipelinedPublisher:
        options: dict[str, Any] = {"ack_timeout": ACK_TIMEOUT, "give_up_after": 60.0, **kwargs}
        publisher = await PipelinedPublisher(cast(Client, fake), **options).start()
        started.append(publisher)
        return publisher

    yield start
    for publisher in started:
        await publisher.close(timeout=0)


@pytest.fixture
async def publisher(start_publisher: StartPublisher) -> PipelinedPublisher:
    return await start_publisher()


async def send(publisher: PipelinedPublisher, n: int, **kwargs: Any) -> asyncio.Future[Ack]:
    return await publisher.publish(f"s.{n}", b"v%d" % n, {"Nats-Msg-Id": f"id-{n}"}, **kwargs)


async def sent_count(fake: FakeNats, n: int) -> None:
    await poll_until(lambda: len(fake.sent) >= n, timeout=DEADLINE, interval=0.01, what=f"{n} publishes")


async def settled(future: asyncio.Future[Any]) -> Any:
    return await asyncio.wait_for(future, DEADLINE)


# -- acks ------------------------------------------------------------------------------------


async def test_publish_sends_subject_payload_and_headers_with_a_reply_under_its_inbox(
    publisher: PipelinedPublisher, fake: FakeNats
) -> None:
    await send(publisher, 1)
    (sent,) = fake.sent
    assert (sent.subject, sent.payload, sent.headers) == ("s.1", b"v1", {"Nats-Msg-Id": "id-1"})
    assert fake.subscription is not None
    assert fake.subscription.subject == f"{fake.inbox}.*"
    assert sent.reply.startswith(f"{fake.inbox}.")


async def test_an_ack_resolves_the_future_with_stream_and_sequence(
    publisher: PipelinedPublisher, fake: FakeNats
) -> None:
    future = await send(publisher, 1)
    assert publisher.in_flight == 1
    await fake.reply(fake.sent[0], ack_body("FAUST_t_0", 7))
    assert await settled(future) == Ack("FAUST_t_0", 7, False)
    assert publisher.in_flight == 0


async def test_acks_arriving_out_of_order_reach_their_own_messages(
    publisher: PipelinedPublisher, fake: FakeNats
) -> None:
    futures = [await send(publisher, n) for n in range(3)]
    for seq, sent in reversed(list(enumerate(fake.sent, start=10))):
        await fake.reply(sent, ack_body("S", seq))
    assert [await settled(f) for f in futures] == [Ack("S", 10, False), Ack("S", 11, False), Ack("S", 12, False)]


@pytest.mark.parametrize(
    "reply_subject",
    [pytest.param("{inbox}.999", id="unknown-token"), pytest.param("{inbox}.x", id="not-a-token")],
)
async def test_stray_replies_are_ignored(
    publisher: PipelinedPublisher, fake: FakeNats, reply_subject: str
) -> None:
    future = await send(publisher, 1)
    await fake.reply_on(reply_subject.format(inbox=fake.inbox), ack_body("S", 1))
    assert not future.done() and publisher.in_flight == 1


# -- refused writes --------------------------------------------------------------------------


async def test_wrong_last_sequence_on_a_fenced_write_fails_with_fenced_error(
    publisher: PipelinedPublisher, fake: FakeNats
) -> None:
    future = await send(publisher, 1, fence="tbl-changelog[0]")
    await fake.reply(fake.sent[0], WRONG_LAST_SEQUENCE)
    with pytest.raises(FencedError) as caught:
        await settled(future)
    assert caught.value.resource == "tbl-changelog[0]"
    assert publisher.in_flight == 0


async def test_wrong_last_sequence_without_a_fence_fails_with_broken_error(
    publisher: PipelinedPublisher, fake: FakeNats
) -> None:
    future = await send(publisher, 1)
    await fake.reply(fake.sent[0], WRONG_LAST_SEQUENCE)
    with pytest.raises(BrokenError) as caught:
        await settled(future)
    assert not isinstance(caught.value, FencedError)
    assert "s.1" in str(caught.value) and "wrong last sequence: 3" in str(caught.value)


@pytest.mark.parametrize("fence", [None, "tbl-changelog[0]"])
async def test_other_refusals_fail_with_broken_error_even_on_a_fenced_write(
    publisher: PipelinedPublisher, fake: FakeNats, fence: str | None
) -> None:
    future = await send(publisher, 1, fence=fence)
    await fake.reply(fake.sent[0], error_body(400, 10054, "maximum messages exceeded"))
    with pytest.raises(BrokenError, match="maximum messages exceeded") as caught:
        await settled(future)
    assert not isinstance(caught.value, FencedError)
    assert publisher.in_flight == 0


@pytest.mark.parametrize(
    ("body", "scope"),
    [
        pytest.param(error_body(503, 10023, "insufficient resources", stream="FAUST_t_0"), "server", id="store-full"),
        pytest.param(error_body(503, 10077, "maximum bytes exceeded", stream="FAUST_t_0"), "stream", id="stream-at-cap"),
    ],
)
async def test_no_room_fails_at_once_with_storage_full_and_is_not_resent(
    publisher: PipelinedPublisher, fake: FakeNats, clock: FakeMonotonic, body: bytes, scope: str
) -> None:
    future = await send(publisher, 1)
    await send(publisher, 2)  # left unanswered: its resend shows a sweep has run
    await fake.reply(fake.sent[0], body)
    with pytest.raises(StorageFull) as caught:
        await settled(future)
    assert (caught.value.subject, caught.value.stream, caught.value.scope) == ("s.1", "FAUST_t_0", scope)
    assert publisher.in_flight == 1
    clock.advance(PAST_TIMEOUT)  # a 503 otherwise means "resend shortly"
    await sent_count(fake, 3)
    assert [s.msg_id for s in fake.sent] == ["id-1", "id-2", "id-2"]


# -- retries ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "headers"),
    [
        pytest.param(b"", NO_RESPONDERS, id="no-responders-status"),
        pytest.param(b"", None, id="empty-reply"),
        pytest.param(error_body(503, 10008, "JetStream system temporarily unavailable"), None, id="json-503"),
    ],
)
async def test_unavailable_is_retried_with_the_same_msg_id(
    publisher: PipelinedPublisher,
    fake: FakeNats,
    clock: FakeMonotonic,
    data: bytes,
    headers: dict[str, str] | None,
) -> None:
    future = await send(publisher, 1)
    await fake.reply(fake.sent[0], data, headers)
    assert not future.done()
    clock.advance(FIRST_RETRY_DELAY * 1.5)
    await sent_count(fake, 2)
    first, retry = fake.sent
    assert (retry.subject, retry.payload, retry.headers, retry.reply) == (
        first.subject,
        first.payload,
        first.headers,
        first.reply,
    )
    await fake.reply(retry, ack_body("S", 1))
    assert await settled(future) == Ack("S", 1, False)


async def test_only_messages_past_the_ack_timeout_are_resent_with_the_same_msg_id(
    publisher: PipelinedPublisher, fake: FakeNats, clock: FakeMonotonic
) -> None:
    late = await send(publisher, 1)
    clock.advance(HALF_TIMEOUT)
    recent = await send(publisher, 2)
    clock.advance(HALF_TIMEOUT)  # message 1 is due now, message 2 is not
    await sent_count(fake, 3)
    assert [s.msg_id for s in fake.sent] == ["id-1", "id-2", "id-1"]
    assert fake.sent[2].reply == fake.sent[0].reply
    # The first attempt's ack, arriving late, settles it; the resend's ack is then ignored.
    await fake.reply(fake.sent[0], ack_body("S", 1))
    await fake.reply(fake.sent[2], ack_body("S", 1))
    assert await settled(late) == Ack("S", 1, False)
    assert not recent.done()


async def test_a_message_unacknowledged_past_give_up_after_fails_with_broken_error(
    start_publisher: StartPublisher, fake: FakeNats, clock: FakeMonotonic
) -> None:
    publisher = await start_publisher(give_up_after=1.0)
    future = await send(publisher, 1)
    clock.advance(PAST_TIMEOUT)
    await sent_count(fake, 2)
    clock.advance(1.0)
    with pytest.raises(BrokenError, match=r"s\.1 not acknowledged after 2 attempts") as caught:
        await settled(future)
    assert not isinstance(caught.value, FencedError)
    assert publisher.in_flight == 0
    assert len(fake.sent) == 2


# -- last value wins per supersede key -------------------------------------------------------


async def test_an_older_send_timing_out_after_a_newer_one_was_sent_is_not_resent(
    publisher: PipelinedPublisher, fake: FakeNats, clock: FakeMonotonic
) -> None:
    older = await send(publisher, 1, supersede_key="k")
    # Sent with the older one and due in the same sweep: its resend shows the sweep has run.
    marker = await send(publisher, 2)
    clock.advance(HALF_TIMEOUT)
    newer = await send(publisher, 3, supersede_key="k")
    clock.advance(HALF_TIMEOUT)
    await sent_count(fake, 4)
    assert [s.msg_id for s in fake.sent] == ["id-1", "id-2", "id-3", "id-2"]
    assert not older.done()
    await fake.reply(fake.sent[2], ack_body("S", 9))
    assert await settled(newer) == Ack("S", 9, False)
    assert await settled(older) == Ack("S", 9, False)
    assert not marker.done()


async def test_an_older_send_timing_out_after_the_newer_one_was_acked_takes_its_ack(
    publisher: PipelinedPublisher, fake: FakeNats, clock: FakeMonotonic
) -> None:
    older = await send(publisher, 1, supersede_key="k")
    await send(publisher, 2, supersede_key="k")
    await fake.reply(fake.sent[1], ack_body("S", 5))
    clock.advance(PAST_TIMEOUT)
    assert await settled(older) == Ack("S", 5, False)
    assert [s.msg_id for s in fake.sent] == ["id-1", "id-2"]


async def test_an_older_send_timing_out_with_no_newer_send_is_resent(
    publisher: PipelinedPublisher, fake: FakeNats, clock: FakeMonotonic
) -> None:
    future = await send(publisher, 1, supersede_key="k")
    await send(publisher, 2, supersede_key="other-key")
    clock.advance(PAST_TIMEOUT)
    await sent_count(fake, 4)
    assert sorted(s.msg_id for s in fake.sent[2:]) == ["id-1", "id-2"]
    await fake.reply(fake.sent[0], ack_body("S", 1))
    assert await settled(future) == Ack("S", 1, False)


async def test_an_older_send_refused_as_unavailable_follows_the_newer_send(
    publisher: PipelinedPublisher, fake: FakeNats
) -> None:
    older = await send(publisher, 1, supersede_key="k")
    newer = await send(publisher, 2, supersede_key="k")
    await fake.reply(fake.sent[0], b"", NO_RESPONDERS)
    await fake.reply(fake.sent[1], ack_body("S", 4))
    assert await settled(newer) == await settled(older) == Ack("S", 4, False)
    assert len(fake.sent) == 2


async def test_an_older_send_following_a_newer_one_fails_with_it(
    publisher: PipelinedPublisher, fake: FakeNats
) -> None:
    older = await send(publisher, 1, supersede_key="k", fence="tbl[0]")
    newer = await send(publisher, 2, supersede_key="k", fence="tbl[0]")
    await fake.reply(fake.sent[0], b"", NO_RESPONDERS)
    await fake.reply(fake.sent[1], WRONG_LAST_SEQUENCE)
    for future in (newer, older):
        with pytest.raises(FencedError):
            await settled(future)
    assert publisher.in_flight == 0


# -- backpressure and flush ------------------------------------------------------------------


async def test_publish_waits_while_max_in_flight_messages_are_unacknowledged(
    start_publisher: StartPublisher, fake: FakeNats
) -> None:
    publisher = await start_publisher(max_in_flight=2)
    await send(publisher, 1)
    await send(publisher, 2)
    third = asyncio.create_task(send(publisher, 3))
    await asyncio.sleep(0)  # one turn of the loop: the task runs until it blocks
    assert not third.done()
    assert [s.msg_id for s in fake.sent] == ["id-1", "id-2"]
    await fake.reply(fake.sent[1], ack_body("S", 2))
    await settled(third)
    assert [s.msg_id for s in fake.sent] == ["id-1", "id-2", "id-3"]
    assert publisher.in_flight == 2


async def test_flush_waits_until_every_message_is_settled(
    publisher: PipelinedPublisher, fake: FakeNats
) -> None:
    for n in range(3):
        await send(publisher, n)
    flushing = asyncio.create_task(publisher.flush())
    await fake.reply(fake.sent[0], ack_body("S", 1))
    await fake.reply(fake.sent[2], WRONG_LAST_SEQUENCE)  # a failure settles a message too
    await asyncio.sleep(0)
    assert not flushing.done()
    await fake.reply(fake.sent[1], ack_body("S", 2))
    await settled(flushing)
    assert publisher.in_flight == 0


async def test_flush_with_nothing_in_flight_returns(publisher: PipelinedPublisher) -> None:
    await settled(publisher.flush())


async def test_flush_gives_up_after_its_timeout(publisher: PipelinedPublisher) -> None:
    await send(publisher, 1)
    with pytest.raises(TimeoutError):
        await publisher.flush(timeout=0)


# -- lifecycle -------------------------------------------------------------------------------


async def test_publish_before_start_is_refused(fake: FakeNats) -> None:
    publisher = PipelinedPublisher(cast(Client, fake))
    assert publisher.state is PublisherState.NEW
    with pytest.raises(ClosedError):
        await send(publisher, 1)


async def test_close_waits_for_outstanding_acks(publisher: PipelinedPublisher, fake: FakeNats) -> None:
    future = await send(publisher, 1)
    closing = asyncio.create_task(publisher.close(timeout=DEADLINE))
    await asyncio.sleep(0)
    assert not closing.done()
    await fake.reply(fake.sent[0], ack_body("S", 1))
    await settled(closing)
    assert await settled(future) == Ack("S", 1, False)


async def test_close_fails_what_is_left_with_closed_error_and_is_idempotent(
    publisher: PipelinedPublisher, fake: FakeNats
) -> None:
    future = await send(publisher, 1)
    await publisher.close(timeout=0)
    with pytest.raises(ClosedError):
        await settled(future)
    assert publisher.state is PublisherState.CLOSED
    assert publisher.in_flight == 0
    assert fake.subscription is not None and fake.subscription.unsubscribed
    await publisher.close()
    assert publisher.state is PublisherState.CLOSED


async def test_a_closed_publisher_refuses_to_publish_or_restart(publisher: PipelinedPublisher) -> None:
    await publisher.close()
    with pytest.raises(ClosedError):
        await send(publisher, 1)
    with pytest.raises(ClosedError):
        await publisher.start()


async def test_close_wakes_a_publish_waiting_for_room_with_closed_error(
    start_publisher: StartPublisher,
) -> None:
    publisher = await start_publisher(max_in_flight=1)
    await send(publisher, 1)
    waiting = asyncio.create_task(send(publisher, 2))
    await asyncio.sleep(0)
    await publisher.close(timeout=0)
    with pytest.raises(ClosedError):
        await settled(waiting)


async def test_a_duplicate_ack_sets_the_duplicate_flag(publisher: PipelinedPublisher, fake: FakeNats) -> None:
    future = await send(publisher, 1)
    # Byte for byte what nats-server 2.15 answers to a Nats-Msg-Id it has already stored (the
    # blank after the colon included: the server writes this suffix by hand).
    await fake.reply(fake.sent[0], b'{"stream":"S","seq":3,"duplicate": true}')
    assert await settled(future) == Ack("S", 3, True)
