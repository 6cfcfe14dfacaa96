"""LagReader on a real server: each group's lag per partition, from the streams and the offsets
bucket, with the groups found or named."""

from __future__ import annotations

import pytest
from nats.js import JetStreamContext

from bridges.naming import Naming
from bridges.transport.lag import LagReader, PartitionLag
from bridges.transport.offsets import OffsetStore, PartitionRef
from bridges.transport.topics import TopicRegistry, TopicSpec

pytestmark = pytest.mark.integration


async def committed(js: JetStreamContext, group: str, offsets: dict[int, int]) -> None:
    store = OffsetStore(js, Naming(), group)
    await store.start()
    refs = {PartitionRef("orders", p): offset for p, offset in offsets.items()}
    await store.claim(refs)
    assert await store.commit(refs) == set()


def lags(found: list[PartitionLag]) -> dict[tuple[str, int], int]:
    return {(lag.group, lag.partition): lag.lag for lag in found}


async def test_lag_is_end_minus_committed_for_every_group_found(
    js: JetStreamContext, naming: Naming, registry: TopicRegistry
) -> None:
    reader = LagReader(js, naming, "orders")
    assert await reader.read() == []  # no topic yet
    await registry.declare(TopicSpec("orders", 2))
    for n in range(5):
        await js.publish(naming.subject("orders", 0), f"{n}".encode())
    await js.publish(naming.subject("orders", 1), b"x")
    assert await reader.read() == []  # no group has committed anything yet
    await committed(js, "fast", {0: 6, 1: 2})  # offsets are 1-based: everything read
    await committed(js, "slow.v2", {0: 3})  # a group name that needs encoding in a KV key
    assert lags(await reader.read()) == {("fast", 0): 0, ("fast", 1): 0, ("slow.v2", 0): 3, ("slow.v2", 1): 1}
    await js.publish(naming.subject("orders", 1), b"y")
    only = LagReader(js, naming, "orders", groups=["fast"])
    assert lags(await only.read()) == {("fast", 0): 0, ("fast", 1): 1}


async def test_a_named_group_that_never_committed_lags_by_every_record(
    js: JetStreamContext, naming: Naming, registry: TopicRegistry
) -> None:
    await registry.declare(TopicSpec("orders", 1))
    for n in range(3):
        await js.publish(naming.subject("orders", 0), f"{n}".encode())
    [lag] = await LagReader(js, naming, "orders", groups=["new"]).read()
    assert (lag.earliest, lag.end, lag.committed, lag.lag) == (1, 4, None, 3)
