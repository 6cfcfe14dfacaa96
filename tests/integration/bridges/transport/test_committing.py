"""The consumer's commit path on a real server: a drain's last commit covers everything acked,
whatever happens to the callers of a commit under way (bridges/transport/committing.py).

The commit timer's commit is held mid-way, in the state flush that precedes every offset
commit, while another caller of ``commit`` is cancelled — as the fetch loop's delivery is when
a revoke or a stop stops the flow — and a drain then makes its last commit. The offsets
committed to the KV store must cover every message acknowledged before the drain, or the
partition's next owner processes the rest again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

import faust
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from bridges.server import NatsServer
from bridges.transport.consumer import Consumer
from bridges.transport.offsets import OffsetStore, PartitionRef

pytestmark = pytest.mark.integration

TOPIC = "numbers"
PARTITION = TP(TOPIC, 0)
REF = PartitionRef(TOPIC, 0)
#: event-loop turns a drain that does not wait for the held commit needs, many times over
#: (it does no I/O: nothing left to commit, and only the test's state owner to flush)
TURNS = 200


@dataclass
class HeldFlush:
    """A state owner whose next flush, once armed, holds its commit until released."""

    armed: bool = False
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def flush(self) -> None:
        if self.armed:
            self.armed = False
            self.reached.set()
            await self.release.wait()

    def resume_offset(self, topic: str, partition: int) -> int | None:
        return None


@dataclass
class Member:
    """A consumer holding partition 0 of ``numbers`` (claimed in the offset store), acking by hand."""

    app: faust.App
    consumer: Consumer
    offsets: OffsetStore
    held: HeldFlush

    def process(self, offsets: Iterable[int]) -> None:
        """Deliver and acknowledge these offsets, as an agent that processed them does."""
        for offset in offsets:
            message = ConsumerMessage(
                TOPIC, 0, offset, 0.0, 0, [], None, b"1", None,
                generation_id=self.app.consumer_generation_id,
            )
            self.consumer.track_message(message)
            assert self.consumer.ack(message)

    async def committed(self) -> int | None:
        return (await self.offsets.read([REF]))[REF]

    async def hold_a_commit(self) -> asyncio.Task[bool]:
        """The commit timer's commit, held in its state flush (it has taken its offsets)."""
        self.held.armed = True
        commit = asyncio.create_task(self.consumer.commit())
        await self.held.reached.wait()
        return commit

    async def drain(self, held: asyncio.Task[bool]) -> None:
        """A revoke's last commit; the held commit is released once the drain is done or
        waits for it."""
        drain = asyncio.create_task(self.consumer.commit_and_end_transactions())
        for _ in range(TURNS):
            if drain.done():
                break
            await asyncio.sleep(0)
        self.held.release.set()
        await asyncio.gather(drain, held, return_exceptions=True)
        await drain


@pytest.fixture
async def member(nats_server: NatsServer) -> AsyncIterator[Member]:
    app = faust.App("commit-race", broker=nats_server.url, web_enabled=False, topic_partitions=1)
    app.topics.add(app.topic(TOPIC))
    await app.topics._update_indices()  # what faust's subscriber does once its agents start: acks on
    consumer = app.consumer
    assert isinstance(consumer, Consumer)
    session = consumer._session
    await session.acquire()
    try:
        offsets = OffsetStore(session.js, session.naming, app.conf.id)
        await offsets.start()
        offsets.set_identity("member-1", 1)
        await offsets.claim([REF])
        consumer._offsets = offsets
        consumer._assignment = {PARTITION}
        held = HeldFlush()
        consumer.register_state_owner(held)
        yield Member(app, consumer, offsets, held)
    finally:
        await session.release()


async def _cancelled(task: asyncio.Task[bool]) -> None:
    """Cancel ``task`` and let it end (faust's own wait for a commit swallows the cancellation)."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_cancelled_waiter_does_not_end_the_commit_under_way_for_the_drain(member: Member) -> None:
    member.process(range(1, 11))
    assert await member.consumer.commit()
    assert await member.committed() == 11
    member.process(range(11, 21))
    held = await member.hold_a_commit()  # has taken 11..20 off the acks
    waiter = asyncio.create_task(member.consumer.commit())  # the fetch loop's delivery, say
    await asyncio.sleep(0)  # now waiting for the held commit
    await _cancelled(waiter)  # the flow stops
    member.process(range(21, 31))
    await member.drain(held)
    assert await member.committed() == 31


async def test_a_commit_whose_caller_is_cancelled_still_commits_its_offsets(member: Member) -> None:
    member.process(range(1, 11))
    assert await member.consumer.commit()
    member.process(range(11, 21))
    held = await member.hold_a_commit()  # the delivery's own commit (every broker_commit_every acks)
    await _cancelled(held)  # the flow stops
    member.process(range(21, 31))
    await member.drain(held)
    assert await member.committed() == 31


async def test_the_drain_waits_for_the_commit_under_way_and_commits_after_it(member: Member) -> None:
    member.process(range(1, 11))
    held = await member.hold_a_commit()
    member.process(range(11, 21))
    await member.drain(held)
    assert held.result() is True
    assert await member.committed() == 21
