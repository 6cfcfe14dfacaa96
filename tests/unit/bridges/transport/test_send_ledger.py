"""The flush barrier: a flush waits for the sends begun before it, settled in any order, and
for none begun after it."""

from __future__ import annotations

import asyncio

import pytest

from bridges.transport.send_ledger import SendLedger


async def _turns(n: int = 5) -> None:
    """Let the tasks that are ready run (no I/O here: a few turns settle everything that can)."""
    for _ in range(n):
        await asyncio.sleep(0)


async def test_a_flush_with_nothing_in_flight_returns_at_once() -> None:
    ledger = SendLedger()
    await ledger.flush()
    ledger.settle(ledger.begin())
    await ledger.flush()
    assert len(ledger) == 0


async def test_a_flush_waits_for_every_send_begun_before_it_settled_in_any_order() -> None:
    ledger = SendLedger()
    first, second, third = ledger.begin(), ledger.begin(), ledger.begin()
    flush = asyncio.create_task(ledger.flush())
    ledger.settle(third)
    ledger.settle(first)
    await _turns()
    assert not flush.done()
    ledger.settle(second)
    await _turns()
    assert flush.done()


async def test_sends_begun_during_a_flush_do_not_extend_it() -> None:
    ledger = SendLedger()
    before = [ledger.begin() for _ in range(3)]
    flush = asyncio.create_task(ledger.flush())
    await _turns()
    after = []
    for number in before:  # each settled send makes room for another, as a steady stream does
        after.append(ledger.begin())
        ledger.settle(number)
    await _turns()
    assert flush.done()
    assert len(ledger) == len(after)  # those begun after it are still in flight


async def test_a_flush_up_to_a_mark_taken_earlier_ignores_what_began_since() -> None:
    ledger = SendLedger()
    early = ledger.begin()
    mark = ledger.mark()
    late = ledger.begin()
    flush = asyncio.create_task(ledger.flush(mark))
    ledger.settle(early)
    await _turns()
    assert flush.done()
    ledger.settle(late)


async def test_settling_twice_or_an_unknown_send_changes_nothing() -> None:
    ledger = SendLedger()
    number = ledger.begin()
    ledger.settle(number)
    ledger.settle(number)
    ledger.settle(99)
    assert len(ledger) == 0


async def test_a_cancelled_flush_leaves_no_waiter_behind() -> None:
    ledger = SendLedger()
    number = ledger.begin()
    flush = asyncio.create_task(ledger.flush())
    await _turns()
    flush.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flush
    assert ledger._flushes == []
    ledger.settle(number)
