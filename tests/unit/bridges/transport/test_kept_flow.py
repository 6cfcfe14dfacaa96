"""The flow control's clears spare the partitions kept through a rebalance, and only those."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from faust.types import TP
from mode.utils.queues import FlowControlEvent, FlowControlQueue, ThrowableQueue

from bridges.transport.kept_flow import KeptFlow

KEPT = TP("events", 0)
LOST = TP("events", 1)


@dataclass
class _Message:
    tp: TP
    offset: int


@dataclass
class _Event:
    message: _Message


def _queued(queue: FlowControlQueue) -> list[tuple[int, int]]:
    items = []
    while not queue.empty():
        event = queue.get_nowait()
        items.append((event.message.tp.partition, event.message.offset))
    return items


@pytest.fixture
def flow() -> tuple[FlowControlEvent, KeptFlow, FlowControlQueue]:
    control = FlowControlEvent(initially_suspended=False)
    kept = KeptFlow(control)
    queue: FlowControlQueue = FlowControlQueue(flow_control=control, clear_on_resume=True)
    for offset in range(1, 4):
        for tp in (KEPT, LOST):
            queue.put_nowait(_Event(_Message(tp, offset)))
    queue.put_nowait("not an event")
    return control, kept, queue


def test_a_clear_keeps_the_kept_partitions_events_in_order(flow) -> None:
    control, kept, queue = flow
    kept.keep(frozenset({KEPT}))
    control.clear()
    assert _queued(queue) == [(0, 1), (0, 2), (0, 3)]


def test_resuming_clears_all_but_the_kept_partitions_too(flow) -> None:
    control, kept, queue = flow
    kept.keep(frozenset({KEPT}))
    control.resume()
    assert _queued(queue) == [(0, 1), (0, 2), (0, 3)]


def test_with_nothing_kept_a_clear_empties_every_queue(flow) -> None:
    control, kept, queue = flow
    kept.keep(frozenset())
    control.clear()
    assert queue.empty()


def test_with_the_flow_suspended_a_clear_empties_every_queue(flow) -> None:
    """A stream skips and acknowledges what it takes while the flow is suspended: an event kept
    then would be lost, not processed."""
    control, kept, queue = flow
    kept.keep(frozenset({KEPT}))
    control.suspend()
    control.clear()
    assert queue.empty()
    assert kept.spares(KEPT) and not kept.spares(LOST)


async def _clear_with_puts_waiting(
    queued: list[tuple[TP, int]], waiting: list[tuple[TP, int]], *, recovery: bool = False
) -> tuple[ThrowableQueue, list[asyncio.Future[None]]]:
    """A queue as full as faust's conductor finds it: ``queued`` fills it, and puts of
    ``waiting`` wait for room; then a clear while ``KEPT`` flows through a rebalance.
    ``recovery``: the queue is the tables' recovery queue."""
    control = FlowControlEvent(initially_suspended=False)
    queue: ThrowableQueue = ThrowableQueue(maxsize=len(queued), flow_control=control, clear_on_resume=True)
    kept = KeptFlow(control, recovery_queue=(lambda: queue) if recovery else (lambda: None))
    for tp, offset in queued:
        queue.put_nowait(_Event(_Message(tp, offset)))
    puts = [asyncio.ensure_future(queue.put(_Event(_Message(tp, offset)))) for tp, offset in waiting]
    await asyncio.sleep(0)  # each put runs until it waits for room
    assert not any(put.done() for put in puts)
    kept.keep(frozenset({KEPT}))
    control.clear()
    return queue, puts


@pytest.mark.parametrize("kept_in_queue", [True, False], ids=["some-kept-queued", "none-kept-queued"])
async def test_a_putter_waiting_on_a_full_queue_gets_the_room_a_clear_makes(kept_in_queue: bool) -> None:
    """faust's conductor puts into a full queue and waits for room: a get hands it over. A
    clear that removed events without handing the room over left that put asleep for good once
    the queue was empty, and with it the fetcher, which delivers every partition. The waiting
    event may be a kept partition's, so it must get in, not be dropped."""
    first = KEPT if kept_in_queue else LOST
    queue, (waiting,) = await _clear_with_puts_waiting([(first, 1), (LOST, 2)], [(KEPT, 3)])
    await asyncio.wait_for(waiting, timeout=5.0)
    assert _queued(queue) == ([(0, 1)] if kept_in_queue else []) + [(0, 3)]


async def test_a_clear_hands_over_no_more_room_than_it_made() -> None:
    queue, puts = await _clear_with_puts_waiting([(KEPT, 1), (LOST, 2)], [(KEPT, 3), (KEPT, 4)])
    await asyncio.wait_for(puts[0], timeout=5.0)
    assert not puts[1].done() and queue.full()
    assert queue.get_nowait().message.offset == 1  # a get makes room for the next
    await asyncio.wait_for(puts[1], timeout=5.0)
    assert _queued(queue) == [(0, 3), (0, 4)]


async def test_the_recovery_queue_is_cleared_as_faust_clears_it() -> None:
    """The tables' changelog queue holds no stream's events: emptied with the puts waiting for
    it (their records are read again from the offsets recovery applied), not refilled with a
    record that would skip the ones cleared ahead of it."""
    changelog = TP("events-changelog", 0)
    queue, (waiting,) = await _clear_with_puts_waiting(
        [(changelog, 1), (changelog, 2)], [(changelog, 3)], recovery=True
    )
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, timeout=5.0)
    assert queue.empty()


async def test_a_kept_event_waiting_on_a_queue_full_of_another_topic_gets_in() -> None:
    """An agent of two topics that lost every partition of one: its queue, full of that
    topic's events, is cleared, and the put waiting with a kept partition's event gets in."""
    other = TP("other", 0)
    queue, (waiting,) = await _clear_with_puts_waiting([(other, 1), (other, 2)], [(KEPT, 7)])
    await asyncio.wait_for(waiting, timeout=5.0)
    assert _queued(queue) == [(0, 7)]
