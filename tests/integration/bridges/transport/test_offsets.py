"""OffsetStore on a real server: claims, commits, and fencing of an owner that lost a partition."""

from __future__ import annotations

import asyncio
import json

import pytest
from nats.js import JetStreamContext

from bridges.naming import Naming
from bridges.transport.offsets import OffsetStore, PartitionRef
from tables.errors import BrokenError

pytestmark = pytest.mark.integration

P0 = PartitionRef("orders", 0)
P1 = PartitionRef("orders", 1)


async def store(js: JetStreamContext, group: str = "grp", owner: str = "m1", generation: int = 1) -> OffsetStore:
    offsets = OffsetStore(js, Naming(), group)
    await offsets.start()
    offsets.set_identity(owner, generation)
    return offsets


async def test_claiming_new_partitions_returns_none(js: JetStreamContext) -> None:
    offsets = await store(js)
    assert await offsets.claim([P0, P1]) == {P0: None, P1: None}
    assert offsets.owns(P0) and offsets.owns(P1)


async def test_claim_returns_what_was_committed(js: JetStreamContext) -> None:
    first = await store(js)
    await first.claim([P0, P1])
    assert await first.commit({P0: 11, P1: 3}) == set()
    assert await first.commit({P0: 12}) == set()
    second = await store(js, owner="m2", generation=2)
    assert await second.claim([P0, P1]) == {P0: 12, P1: 3}
    assert await second.read([P0]) == {P0: 12}


async def test_a_commit_after_another_store_claimed_the_partition_is_fenced(js: JetStreamContext) -> None:
    zombie = await store(js, owner="old", generation=1)
    await zombie.claim([P0, P1])
    await zombie.commit({P0: 5, P1: 5})
    successor = await store(js, owner="new", generation=2)
    await successor.claim([P0])
    assert await zombie.commit({P0: 99, P1: 6}) == {P0}
    assert not zombie.owns(P0) and zombie.owns(P1)
    assert await successor.commit({P0: 7}) == set()
    assert await successor.read([P0, P1]) == {P0: 7, P1: 6}
    # Once refused, the zombie stays refused.
    assert await zombie.commit({P0: 100}) == {P0}


async def test_committing_an_unclaimed_partition_is_fenced_and_writes_nothing(js: JetStreamContext) -> None:
    offsets = await store(js)
    await offsets.claim([P1])
    assert await offsets.commit({P0: 4, P1: 2}) == {P0}
    assert await offsets.read([P0, P1]) == {P0: None, P1: 2}


async def test_a_released_partition_can_no_longer_be_committed(js: JetStreamContext) -> None:
    offsets = await store(js)
    await offsets.claim([P0])
    offsets.release([P0])
    assert not offsets.owns(P0)
    assert await offsets.commit({P0: 4}) == {P0}


async def test_concurrent_claims_leave_exactly_one_owner(js: JetStreamContext) -> None:
    stores = [await store(js, owner=f"m{i}", generation=i) for i in range(4)]
    await asyncio.gather(*(s.claim([P0]) for s in stores))
    refused = [await s.commit({P0: i}) for i, s in enumerate(stores)]
    assert sorted(len(r) for r in refused) == [0, 1, 1, 1]


async def test_groups_keep_separate_offsets(js: JetStreamContext) -> None:
    a, b = await store(js, group="a"), await store(js, group="b")
    await a.claim([P0])
    await b.claim([P0])
    assert await a.commit({P0: 10}) == await b.commit({P0: 20}) == set()
    assert (await a.read([P0]), await b.read([P0])) == ({P0: 10}, {P0: 20})


async def test_unusual_group_and_topic_names_work(js: JetStreamContext) -> None:
    ref = PartitionRef("app.tbl changelog~é", 3)
    offsets = await store(js, group="my app=1.0")
    await offsets.claim([ref])
    assert await offsets.commit({ref: 8}) == set()
    assert await (await store(js, group="my app=1.0")).read([ref]) == {ref: 8}


async def test_values_are_json_with_owner_and_generation(js: JetStreamContext) -> None:
    offsets = await store(js, owner="member-7", generation=4)
    await offsets.claim([P0])
    kv = await js.key_value(Naming().offsets_bucket)
    key = Naming().offset_key("grp", "orders", 0)
    assert json.loads((await kv.get(key)).value) == {"offset": None, "owner": "member-7", "generation": 4}
    offsets.set_identity("member-7", 5)
    await offsets.commit({P0: 42})
    assert json.loads((await kv.get(key)).value) == {"offset": 42, "owner": "member-7", "generation": 5}


async def test_a_store_used_before_start_says_so(js: JetStreamContext) -> None:
    offsets = OffsetStore(js, Naming(), "grp")
    with pytest.raises(BrokenError, match="not been started"):
        await offsets.claim([P0])
