"""FencedWriter: final values and dead letters only under a valid lease, KV before the result.

The real pipelined publisher runs on the fake NATS client (the test plays the server), the lease
deadline on a fake clock, and KV reads come from a dict: no sockets, and nothing waits on time
except to be woken (a withheld write backs off for 20 ms of real time at most).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import cast

import pytest
from nats.aio.client import Client

from bridges.group.lease_clock import LeaseDeadline
from bridges.public.fenced_writes import FencedWriter, Stored
from bridges.transport.publisher import PipelinedPublisher
from tables.errors import BrokenError, FencedError
from testkit.workers import poll_until
from tests.unit.bridges.fake_nats import FakeMonotonic, FakeNats, Sent, ack_body, error_body

KEY = "engagement.s-1.1714557600"
KV_SUBJECT = f"$KV.metrics.{KEY}"
SUBJECT = "results.engagement.s-1"
TTL = 3.0
DEADLINE = 10.0
WRONG_LAST_SEQUENCE = error_body(400, 10071, "wrong last sequence: 7")


def document(events: int, *, final: bool = True) -> bytes:
    return json.dumps({"metric": "engagement", "final": final, "events": events}).encode()


class LeaseTime:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class World:
    """What the writer sees: the fake server, the lease, the KV keys and the connection."""

    def __init__(self, fake: FakeNats, publisher: PipelinedPublisher, clock: FakeMonotonic) -> None:
        self.fake = fake
        self.publisher = publisher
        #: the publisher's clock (its ack timeouts), apart from the lease's
        self.publisher_clock = clock
        self.time = LeaseTime()
        self.lease = LeaseDeadline(TTL, clock=self.time)
        self.term = self.lease.begin(self.time.now)
        self.keys: dict[str, Stored] = {}
        self.reads: list[str] = []
        self.connected = True
        #: (subject, Nats-Msg-Id) of the finals the results stream holds
        self.published: set[tuple[str, str]] = set()
        self.writer = FencedWriter(
            publisher, self.read, lambda: self.lease, lambda: self.connected, published=self.holds
        )

    async def holds(self, subject: str, msg_id: str, final: bytes) -> bool:
        return (subject, msg_id) in self.published

    async def read(self, kv_key: str) -> Stored | None:
        self.reads.append(kv_key)
        return self.keys.get(kv_key)

    def lapse(self) -> None:
        """The process was paused past its deadline."""
        self.time.now += 2 * TTL

    def renew(self) -> None:
        self.lease.renewed(self.time.now)

    async def sent(self, count: int) -> list[Sent]:
        await poll_until(lambda: len(self.fake.sent) >= count, timeout=DEADLINE, interval=0.005, what=f"{count} sends")
        return self.fake.sent

    async def nothing_more_sent(self, count: int) -> None:
        """Let the writer run as far as it can; it must not have sent more than ``count``."""
        for _ in range(20):
            await asyncio.sleep(0)
        assert len(self.fake.sent) == count, [s.subject for s in self.fake.sent]


@pytest.fixture
async def world(fake: FakeNats, clock: FakeMonotonic) -> AsyncIterator[World]:
    publisher = await PipelinedPublisher(cast(Client, fake), ack_timeout=0.2, give_up_after=60.0).start()
    yield World(fake, publisher, clock)
    await publisher.close(timeout=0)


async def done(write: Awaitable[None]) -> None:
    await asyncio.wait_for(asyncio.ensure_future(write), DEADLINE)


# -- ordering: KV first, then the result ---------------------------------------------------------


async def test_the_result_is_published_only_once_kv_acknowledged_the_final_value(world: World) -> None:
    write = await world.writer.final(KEY, SUBJECT, document(3), revision=lambda: 0)
    (kv,) = await world.sent(1)
    assert (kv.subject, kv.payload, kv.headers) == (
        KV_SUBJECT, document(3), {"Nats-Expected-Last-Subject-Sequence": "0", "Nats-Msg-Id": f"result:{KEY}"}
    )
    await world.nothing_more_sent(1)  # no result while KV has not stored the value
    await world.fake.reply(kv, ack_body("KV_metrics", 5))
    result = (await world.sent(2))[1]
    assert (result.subject, result.payload, result.msg_id) == (SUBJECT, document(3), f"result:{KEY}")
    await world.fake.reply(result, ack_body("FAUST_RESULTS", 1))
    await done(write)


@pytest.mark.parametrize("found", [False, True], ids=["stored", "found-stored"])
async def test_when_the_server_publishes_from_kv_the_final_is_written_once(world: World, found: bool) -> None:
    writer = FencedWriter(world.publisher, world.read, lambda: world.lease, lambda: world.connected, published=None)
    if found:
        world.keys[KEY] = Stored(7, document(3))
    write = await writer.final(KEY, SUBJECT, document(3), revision=lambda: 0)
    (kv,) = await world.sent(1)
    assert (kv.subject, kv.headers["Nats-Msg-Id"]) == (KV_SUBJECT, f"result:{KEY}")
    await world.fake.reply(kv, WRONG_LAST_SEQUENCE if found else ack_body("KV_metrics", 5))
    await done(write)
    await world.nothing_more_sent(1)  # KV holds it: the results stream takes it from there


@pytest.mark.parametrize("events", [3, 2], ids=["same-value", "another-value"])
async def test_a_window_found_final_publishes_the_value_kv_holds(
    world: World, events: int, caplog: pytest.LogCaptureFixture
) -> None:
    world.keys[KEY] = Stored(7, document(events))
    write = await world.writer.final(KEY, SUBJECT, document(3), revision=lambda: 0)
    await world.fake.reply((await world.sent(1))[0], WRONG_LAST_SEQUENCE)
    result = (await world.sent(2))[1]
    # A replay publishes again what is stored (deduplicated by its msg id); a different value
    # found is logged and published as stored, so results never contradict KV.
    assert (result.subject, result.payload, result.msg_id) == (SUBJECT, document(events), f"result:{KEY}")
    await world.fake.reply(result, ack_body("FAUST_RESULTS", 1))
    await done(write)
    differs = [r for r in caplog.records if "already final with another value" in r.getMessage()]
    assert bool(differs) == (events != 3)


async def test_a_window_found_final_and_published_is_not_published_again(world: World) -> None:
    # A replay long after the first worker stored and published the final: the stream's dedupe
    # window has passed, so only the lookup keeps a subscriber from seeing it twice.
    world.keys[KEY] = Stored(7, document(3))
    world.published.add((SUBJECT, f"result:{KEY}"))
    write = await world.writer.final(KEY, SUBJECT, document(3), revision=lambda: 0)
    await world.fake.reply((await world.sent(1))[0], WRONG_LAST_SEQUENCE)
    await done(write)
    await world.nothing_more_sent(1)


async def test_a_final_this_worker_stored_is_published_without_a_lookup(world: World) -> None:
    # Only a final found in KV is looked up: one this worker just stored cannot be out yet.
    world.published.add((SUBJECT, f"result:{KEY}"))  # (would say "published" if asked)
    write = await world.writer.final(KEY, SUBJECT, document(3), revision=lambda: 0)
    await world.fake.reply((await world.sent(1))[0], ack_body("KV_metrics", 5))
    result = (await world.sent(2))[1]
    assert result.msg_id == f"result:{KEY}"
    await world.fake.reply(result, ack_body("FAUST_RESULTS", 1))
    await done(write)


# -- the gate ----------------------------------------------------------------------------------


async def test_nothing_is_sent_while_the_lease_may_have_expired_and_the_write_goes_out_after_renewal(
    world: World,
) -> None:
    world.lapse()
    write = await world.writer.final(KEY, SUBJECT, document(3), revision=lambda: 0)
    await world.nothing_more_sent(0)
    world.renew()
    (kv,) = await world.sent(1)
    assert kv.subject == KV_SUBJECT
    await world.fake.reply(kv, ack_body("KV_metrics", 5))
    await world.fake.reply((await world.sent(2))[1], ack_body("FAUST_RESULTS", 1))
    await done(write)


async def test_a_write_of_a_membership_that_ended_is_never_sent_and_fails_fenced(world: World) -> None:
    world.lapse()
    write = await world.writer.final(KEY, SUBJECT, document(3), revision=lambda: 0)
    letter = await world.writer.dead_letter("deadletter.late.engagement", b"{}", {"Nats-Msg-Id": "late:1"})
    world.lease.end()  # the keeper found the lease lost
    world.lease.begin(world.time.now)  # and the worker rejoined: a new term, valid
    for attempt in (write, letter):
        with pytest.raises(FencedError):
            await done(attempt)
        with pytest.raises(FencedError):  # awaited again, it tries again, under its own term
            await done(attempt)
    await world.nothing_more_sent(0)


async def test_a_resend_after_the_lease_lapsed_waits_for_renewal_then_reads_before_writing(world: World) -> None:
    write = await world.writer.final(KEY, SUBJECT, document(3), revision=lambda: 0)
    await world.sent(1)
    # The ack is lost and the process pauses past its lease: the publisher's resend is withheld.
    world.lapse()
    world.publisher_clock.advance(1.0)  # past the ack timeout: a resend is due
    # The sweeper (every 50 ms of real time) withholds it: the message leaves the publisher unsent.
    await poll_until(lambda: world.publisher.in_flight == 0, timeout=DEADLINE, what="the resend withheld")
    await world.nothing_more_sent(1)
    # The first attempt had been stored after all; after the renewal the key is read first.
    world.keys[KEY] = Stored(5, document(3))
    world.renew()
    result = (await world.sent(2))[1]
    assert world.reads == [KEY]
    assert (result.subject, result.payload) == (SUBJECT, document(3))
    await world.fake.reply(result, ack_body("FAUST_RESULTS", 1))
    await done(write)


async def test_a_write_waits_while_the_connection_is_down_then_goes_out(world: World) -> None:
    world.connected = False  # nats-py would buffer it and send it after the reconnect, unchecked
    write = await world.writer.dead_letter("deadletter.late.engagement", b"{}", {"Nats-Msg-Id": "late:1"})
    await world.nothing_more_sent(0)
    world.connected = True
    (letter,) = await world.sent(1)
    assert (letter.subject, letter.msg_id) == ("deadletter.late.engagement", "late:1")
    await world.fake.reply(letter, ack_body("FAUST_DEADLETTER", 1))
    await done(write)


async def test_wait_writable_says_no_until_a_renewal_and_logs_the_lapse_once(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridges.public.fenced_writes")
    assert await world.writer.wait_writable(0.0)
    world.lapse()
    assert not await world.writer.wait_writable(0.01)
    assert not await world.writer.wait_writable(0.01)
    waiting = asyncio.create_task(world.writer.wait_writable(30.0))
    await asyncio.sleep(0)
    world.renew()
    assert await asyncio.wait_for(waiting, DEADLINE)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("lease may have expired" in m for m in messages) == 1
    assert sum("valid again" in m for m in messages) == 1


# -- retrying ------------------------------------------------------------------------------------


async def test_awaiting_a_failed_write_again_makes_a_new_attempt(world: World) -> None:
    write = await world.writer.final(KEY, SUBJECT, document(3), revision=lambda: 0)
    await world.fake.reply((await world.sent(1))[0], error_body(500, 10077, "insufficient resources"))
    with pytest.raises(BrokenError):
        await done(write)
    again = asyncio.ensure_future(write)
    kv = (await world.sent(2))[1]
    assert (kv.subject, kv.headers["Nats-Expected-Last-Subject-Sequence"]) == (KV_SUBJECT, "0")
    assert world.reads == [KEY]  # the new attempt read the key first: the outcome was unknown
    await world.fake.reply(kv, ack_body("KV_metrics", 5))
    await world.fake.reply((await world.sent(3))[2], ack_body("FAUST_RESULTS", 1))
    await done(again)
    await done(write)  # stored: awaiting it once more neither fails nor sends anything
    await world.nothing_more_sent(3)
