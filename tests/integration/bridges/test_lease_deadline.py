"""The lease keeper moves the local deadline against a real server: each acknowledged write of the
member key makes the lease valid for ttl - margin from that write, and losing or giving the lease
up ends the term."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client

from bridges.connection import ConnectionSettings
from bridges.group.lease import LeaseKeeper
from bridges.group.lease_clock import LeaseDeadline, lease_time
from bridges.group.store import GroupKeys, GroupStore
from bridges.naming import Naming
from bridges.server import NatsServer

pytestmark = pytest.mark.integration

TTL = 3.0
MEMBER = "m-1"


@pytest.fixture
def keys() -> GroupKeys:
    return GroupKeys(Naming(), "lease-test")


@pytest.fixture
async def keeper(nats_server: NatsServer, keys: GroupKeys) -> AsyncIterator[LeaseKeeper]:
    lost: list[str] = []
    keeper = LeaseKeeper(
        ConnectionSettings.from_urls(nats_server.url, connect_deadline=20), keys, ttl=TTL, on_lost=lost.append
    )
    await keeper.start()
    yield keeper
    await keeper.stop()


async def test_joining_and_renewing_make_the_lease_valid_for_ttl_minus_margin_from_the_write(keeper: LeaseKeeper) -> None:
    deadline = keeper.deadline
    assert isinstance(deadline, LeaseDeadline) and deadline.term() == 0
    before = lease_time()
    await keeper.join(MEMBER, b"{}")
    after = lease_time()
    until = deadline.valid_until()
    assert until is not None and deadline.valid(deadline.term())
    assert before + TTL - deadline.margin <= until <= after + TTL - deadline.margin
    before = lease_time()
    assert await keeper.renew_now()
    renewed = deadline.valid_until()
    assert renewed is not None and before + TTL - deadline.margin <= renewed <= lease_time() + TTL - deadline.margin


async def test_a_lease_taken_away_ends_the_term_at_the_next_renewal(
    keeper: LeaseKeeper, nc: Client, keys: GroupKeys
) -> None:
    await keeper.join(MEMBER, b"{}")
    term = keeper.deadline.term()
    # The leader evicts the member (it deletes the key): the local deadline cannot see that...
    await GroupStore(nc.jetstream(), keys).delete(keys.member(MEMBER))
    assert keeper.deadline.valid(term)
    # ...until the next renewal is refused.
    assert not await keeper.renew_now()
    assert (keeper.deadline.term(), keeper.deadline.valid(term)) == (0, False)
    assert not await keeper.deadline.wait_valid(5.0, term)


async def test_leaving_and_stopping_end_the_term(keeper: LeaseKeeper) -> None:
    await keeper.join(MEMBER, b"{}")
    await keeper.leave()
    assert not keeper.deadline.valid()
    await keeper.join("m-2", b"{}")
    assert keeper.deadline.valid()
    await asyncio.wait_for(keeper.stop(), 15)
    assert not keeper.deadline.valid()
