"""The local lease deadline: send time of the last acknowledged renewal + TTL - margin.

A fake clock decides validity; waiting uses the event loop only to be woken, by renewals made
here or from another thread as the lease keeper makes them.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from bridges.group.lease_clock import UNFENCED, LeaseDeadline

TTL = 6.0


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.mark.parametrize(
    ("margin", "sent_at", "now", "valid"),
    [
        # the default margin is a third of the TTL: valid until sent_at + 4
        (None, 100.0, 100.0, True),
        (None, 100.0, 103.999, True),
        (None, 100.0, 104.0, False),
        # the send time counts, not the ack's: an ack that took 3 s leaves 1 s
        (None, 97.0, 100.999, True),
        (None, 97.0, 101.0, False),
        # an explicit margin
        (0.5, 100.0, 105.499, True),
        (0.5, 100.0, 105.5, False),
        (0.0, 100.0, 105.999, True),
    ],
)
def test_the_lease_is_valid_until_send_time_plus_ttl_minus_margin(
    clock: Clock, margin: float | None, sent_at: float, now: float, valid: bool
) -> None:
    lease = LeaseDeadline(TTL, margin=margin, clock=clock)
    lease.begin(sent_at)
    clock.now = now
    assert lease.valid() is valid
    assert lease.valid_until() == sent_at + TTL - (TTL / 3 if margin is None else margin)


@pytest.mark.parametrize("margin", [-0.1, TTL, TTL + 1])
def test_a_margin_outside_zero_to_ttl_is_refused(margin: float) -> None:
    with pytest.raises(ValueError, match="margin"):
        LeaseDeadline(TTL, margin=margin)


def test_no_lease_is_held_before_the_first_join(clock: Clock) -> None:
    lease = LeaseDeadline(TTL, clock=clock)
    assert (lease.term(), lease.valid(), lease.valid_until()) == (0, False, None)


def test_renewals_extend_the_term_and_never_move_the_deadline_back(clock: Clock) -> None:
    lease = LeaseDeadline(TTL, clock=clock)
    term = lease.begin(100.0)
    lease.renewed(102.0)
    assert lease.valid_until() == 106.0
    lease.renewed(101.0)  # an older send time acknowledged late
    assert lease.valid_until() == 106.0
    clock.now = 105.0
    assert lease.valid(term) and lease.term() == term


def test_an_expired_lease_is_valid_again_only_after_a_renewal(clock: Clock) -> None:
    lease = LeaseDeadline(TTL, clock=clock)
    term = lease.begin(100.0)
    clock.now = 110.0  # paused past the deadline: nobody said anything, it lapsed
    assert not lease.valid(term)
    lease.renewed(109.5)  # the keeper renewed (the server still had the key)
    assert lease.valid(term)


def test_the_end_of_a_term_is_final_and_a_late_renewal_revives_nothing(clock: Clock) -> None:
    lease = LeaseDeadline(TTL, clock=clock)
    first = lease.begin(100.0)
    lease.end()
    lease.renewed(100.5)
    assert (lease.term(), lease.valid(), lease.valid(first)) == (0, False, False)
    second = lease.begin(101.0)
    assert second > first
    assert lease.valid() and lease.valid(second) and not lease.valid(first)


async def test_wait_valid_returns_at_once_when_valid(clock: Clock) -> None:
    lease = LeaseDeadline(TTL, clock=clock)
    term = lease.begin(100.0)
    assert await lease.wait_valid(0.0, term)


async def waiting_past_the_deadline(clock: Clock) -> tuple[LeaseDeadline, int, asyncio.Task[bool]]:
    """A lease whose deadline passed (the process was paused) and a writer waiting for its term."""
    lease = LeaseDeadline(TTL, clock=clock)
    term = lease.begin(100.0)
    clock.now = 200.0
    waiting = asyncio.create_task(lease.wait_valid(30.0, term))
    await asyncio.sleep(0)
    assert not waiting.done()
    return lease, term, waiting


async def test_wait_valid_is_woken_by_a_renewal_from_the_keepers_thread(clock: Clock) -> None:
    lease, _, waiting = await waiting_past_the_deadline(clock)
    renewal = threading.Thread(target=lease.renewed, args=(199.0,))
    renewal.start()
    renewal.join()
    assert await asyncio.wait_for(waiting, 5.0)


async def test_wait_valid_keeps_waiting_through_a_renewal_that_is_already_too_old(clock: Clock) -> None:
    lease, _, waiting = await waiting_past_the_deadline(clock)
    lease.renewed(150.0)  # acknowledged, but sent long ago: valid until 154, still past
    await asyncio.sleep(0)
    assert not waiting.done()
    lease.renewed(199.0)
    assert await asyncio.wait_for(waiting, 5.0)


async def test_wait_valid_for_a_term_that_ends_returns_false_at_once(clock: Clock) -> None:
    lease, term, waiting = await waiting_past_the_deadline(clock)
    threading.Thread(target=lease.end).start()
    assert await asyncio.wait_for(waiting, 5.0) is False
    lease.begin(200.0)  # a new membership does not make the old term's writes valid
    assert await lease.wait_valid(30.0, term) is False


async def test_wait_valid_without_a_term_accepts_the_next_membership(clock: Clock) -> None:
    lease = LeaseDeadline(TTL, clock=clock)
    lease.begin(100.0)
    lease.end()
    waiting = asyncio.create_task(lease.wait_valid(30.0))
    await asyncio.sleep(0)
    assert not waiting.done()
    lease.begin(100.0)
    assert await asyncio.wait_for(waiting, 5.0)


async def test_wait_valid_gives_up_after_its_timeout(clock: Clock) -> None:
    lease = LeaseDeadline(TTL, clock=clock)
    term = lease.begin(100.0)
    clock.now = 200.0
    assert await lease.wait_valid(0.01, term) is False
    lease.renewed(199.0)  # waking a waiter that gave up must not fail
    assert lease.valid(term)


async def test_an_app_outside_any_group_is_never_fenced() -> None:
    assert UNFENCED.valid() and UNFENCED.valid(UNFENCED.term())
    assert await UNFENCED.wait_valid(0.0, UNFENCED.term())
