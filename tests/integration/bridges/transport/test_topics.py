"""TopicRegistry on a real server: streams per partition, the registry, Kafka-style offsets."""

from __future__ import annotations

import asyncio
import logging

import pytest
from nats.js import JetStreamContext

from bridges.naming import Naming
from bridges.transport.topics import TopicRegistry, TopicSpec
from tables.errors import BrokenError

pytestmark = pytest.mark.integration


async def topic_streams(js: JetStreamContext) -> set[str]:
    """Streams of topics (not the KV buckets' streams)."""
    return {info.config.name for info in await js.streams_info() if info.config.name.startswith("FAUST_")}


async def fresh_registry(js: JetStreamContext, naming: Naming) -> TopicRegistry:
    """Another process's registry: nothing cached, reads the KV bucket."""
    registry = TopicRegistry(js, naming)
    await registry.start()
    return registry


# -- declaring -------------------------------------------------------------------------------


async def test_declare_creates_one_stream_per_partition(
    registry: TopicRegistry, js: JetStreamContext
) -> None:
    spec = await registry.declare(TopicSpec("orders.v1", 3))
    assert spec == TopicSpec("orders.v1", 3)
    assert await topic_streams(js) == {"FAUST_orders=2Ev1_0", "FAUST_orders=2Ev1_1", "FAUST_orders=2Ev1_2"}
    info = await js.stream_info("FAUST_orders=2Ev1_1")
    assert info.config.subjects == ["faust.orders=2Ev1.1"]
    assert info.config.max_msgs_per_subject == -1


async def test_a_compacting_topic_keeps_max_per_key_per_subject_under_one_wildcard(
    registry: TopicRegistry, js: JetStreamContext
) -> None:
    await registry.declare(TopicSpec("tbl-changelog", 1, compacting=True, max_per_key=2, retention=3600))
    config = (await js.stream_info("FAUST_tbl-changelog_0")).config
    assert config.subjects == ["faust.tbl-changelog.0.>"]
    assert config.max_msgs_per_subject == 2
    assert config.max_age == 3600


async def test_a_declared_topic_is_found_by_other_processes(
    registry: TopicRegistry, js: JetStreamContext
) -> None:
    spec = await registry.declare(TopicSpec("orders", 2, compacting=True))
    other = await fresh_registry(js, registry.naming)
    assert other.cached("orders") is None
    assert await other.lookup("orders") == spec
    assert other.cached("orders") == spec
    assert await other.lookup("missing") is None


@pytest.mark.parametrize("same_registry", [True, False], ids=["same-process", "other-process"])
async def test_redeclaring_with_another_partition_count_keeps_the_original_and_warns(
    registry: TopicRegistry, js: JetStreamContext, caplog: pytest.LogCaptureFixture, same_registry: bool
) -> None:
    await registry.declare(TopicSpec("orders", 2))
    again = registry if same_registry else await fresh_registry(js, registry.naming)
    with caplog.at_level(logging.WARNING, logger="bridges.transport.topics"):
        spec = await again.declare(TopicSpec("orders", 5))
    assert spec.partitions == 2
    assert await topic_streams(js) == {"FAUST_orders_0", "FAUST_orders_1"}
    assert any("keeping 2" in record.getMessage() for record in caplog.records)


async def test_concurrent_declares_converge_on_one_spec(
    registry: TopicRegistry, js: JetStreamContext
) -> None:
    registries = [await fresh_registry(js, registry.naming) for _ in range(4)]
    specs = await asyncio.gather(
        *(
            r.declare(TopicSpec("orders", partitions))
            for r, partitions in zip(registries, (2, 2, 3, 4), strict=True)
        )
    )
    assert len(set(specs)) == 1
    (winner,) = set(specs)
    assert await (await fresh_registry(js, registry.naming)).lookup("orders") == winner
    names = await topic_streams(js)
    assert {f"FAUST_orders_{p}" for p in range(winner.partitions)} <= names


# -- offsets ---------------------------------------------------------------------------------


async def publish(js: JetStreamContext, subject: str, count: int = 1) -> list[int]:
    return [(await js.publish(subject, b"x")).seq for _ in range(count)]


async def test_offsets_of_an_unregistered_topic_raise_broken_error(registry: TopicRegistry) -> None:
    with pytest.raises(BrokenError, match="'nope'"):
        await registry.offsets("nope", 0)


async def test_offsets_of_a_missing_stream_raise_broken_error(
    registry: TopicRegistry, js: JetStreamContext
) -> None:
    await registry.declare(TopicSpec("orders", 1))
    await js.delete_stream("FAUST_orders_0")
    with pytest.raises(BrokenError, match="FAUST_orders_0"):
        await registry.offsets("orders", 0)


async def test_ordinary_offsets(registry: TopicRegistry, js: JetStreamContext, naming: Naming) -> None:
    await registry.declare(TopicSpec("orders", 2))
    assert await registry.offsets("orders", 0) == (1, 1)
    await publish(js, naming.subject("orders", 0), 5)
    assert await registry.offsets("orders", 0) == (1, 6)
    assert await registry.offsets("orders", 1) == (1, 1)
    await js.purge_stream("FAUST_orders_0", keep=2)
    assert await registry.offsets("orders", 0) == (4, 6)
    await js.purge_stream("FAUST_orders_0")
    assert await registry.offsets("orders", 0) == (6, 6)


async def compacting(registry: TopicRegistry) -> None:
    await registry.declare(TopicSpec("tbl", 1, compacting=True))


async def test_compacting_offsets_count_data_only(
    registry: TopicRegistry, js: JetStreamContext, naming: Naming
) -> None:
    await compacting(registry)
    fence = naming.fence_subject("tbl", 0)
    assert await registry.offsets("tbl", 0) == (1, 1)
    await publish(js, fence)  # seq 1
    assert await registry.offsets("tbl", 0) == (2, 2), "a fence alone is no data"
    await publish(js, naming.key_subject("tbl", 0, b"a"))  # seq 2
    await publish(js, naming.key_subject("tbl", 0, b"b"))  # seq 3
    assert await registry.offsets("tbl", 0) == (1, 4)
    await publish(js, fence)  # seq 4 replaces the fence at seq 1
    assert await registry.offsets("tbl", 0) == (2, 4), "highwater is one past the last data message"


async def test_compacting_offsets_after_compaction(
    registry: TopicRegistry, js: JetStreamContext, naming: Naming
) -> None:
    await compacting(registry)
    key_a = naming.key_subject("tbl", 0, b"a")
    await publish(js, key_a, 3)  # seqs 1-3; only 3 is kept
    assert await registry.offsets("tbl", 0) == (3, 4)
    await publish(js, naming.fence_subject("tbl", 0))  # seq 4
    assert await registry.offsets("tbl", 0) == (3, 4)
    await publish(js, naming.key_subject("tbl", 0, b"b"))  # seq 5
    await publish(js, key_a)  # seq 6 replaces 3
    assert await registry.offsets("tbl", 0) == (4, 7)


async def test_compacting_offsets_when_only_fences_remain(
    registry: TopicRegistry, js: JetStreamContext, naming: Naming
) -> None:
    await compacting(registry)
    key_a = naming.key_subject("tbl", 0, b"a")
    await publish(js, key_a)  # seq 1
    await publish(js, naming.fence_subject("tbl", 0), 2)  # seqs 2-3; 3 kept
    seq_a = (await js.get_last_msg("FAUST_tbl_0", key_a)).seq
    await js.delete_msg("FAUST_tbl_0", seq_a)
    earliest, highwater = await registry.offsets("tbl", 0)
    assert earliest == highwater == 4
