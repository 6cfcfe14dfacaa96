"""TopicRegistry on a real server: streams per partition, the registry, limits, Kafka-style offsets."""

from __future__ import annotations

import asyncio
import logging

import pytest
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from bridges.naming import Naming
from bridges.transport.topics import DEFAULT_CHANGELOG_MAX_BYTES, DEFAULT_TOPIC_RETENTION, TopicRegistry, TopicSpec
from tables.errors import BrokenError
from testkit.workers import poll_until

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


# -- limits ----------------------------------------------------------------------------------

DAY = 86400.0


async def test_topics_are_bounded_by_their_kind(registry: TopicRegistry, js: JetStreamContext) -> None:
    await registry.declare(TopicSpec("orders", 1))
    await registry.declare(TopicSpec("tbl", 1, compacting=True, max_per_key=2))
    orders = (await js.stream_info("FAUST_orders_0")).config
    tbl = (await js.stream_info("FAUST_tbl_0")).config
    assert (orders.max_age, orders.max_bytes, orders.discard) == (DEFAULT_TOPIC_RETENTION, -1, "old")
    # A changelog holds a table's state: no age, a byte cap, and refusal rather than loss when full.
    assert (tbl.max_age, tbl.max_bytes, tbl.discard) == (0.0, DEFAULT_CHANGELOG_MAX_BYTES, "new")


async def test_a_windowed_changelog_expiring_after_1s_keeps_its_fence(
    registry: TopicRegistry, js: JetStreamContext, naming: Naming
) -> None:
    """faust's windowed tables with ``expires=1s``: the stream's duplicate window fits under its age
    (JetStream refuses it longer), and the fence marker, sent with ``Nats-TTL: never``, stays."""
    spec = await registry.declare(TopicSpec("agg-changelog", 1, compacting=True, retention=1.0))
    config = (await js.stream_info("FAUST_agg-changelog_0")).config
    assert (config.max_age, config.duplicate_window, config.allow_msg_ttl) == (1.0, 1.0, True)
    assert spec.ages_out
    fence = await js.publish(naming.fence_subject("agg-changelog", 0), b"{}", headers={"Nats-TTL": "never"})
    await js.publish(naming.key_subject("agg-changelog", 0, b"k"), b"v")

    async def only_the_fence_left() -> bool:
        return (await js.stream_info("FAUST_agg-changelog_0")).state.messages == 1

    await poll_until(only_the_fence_left, timeout=10, what="the record to age out")
    last = await js.get_last_msg("FAUST_agg-changelog_0", naming.fence_subject("agg-changelog", 0))
    assert last.seq == fence.seq


async def test_redeclaring_with_other_limits_changes_every_partition_in_place(
    registry: TopicRegistry, js: JetStreamContext, naming: Naming, caplog: pytest.LogCaptureFixture
) -> None:
    await registry.declare(TopicSpec("orders", 2))
    for partition in (0, 1):
        await publish(js, naming.subject("orders", partition), 3)
    created = {p: (await js.stream_info(f"FAUST_orders_{p}")).created for p in (0, 1)}
    other = await fresh_registry(js, registry.naming)  # another process, after a restart
    with caplog.at_level(logging.WARNING, logger="bridges.jetstream"):
        spec = await other.declare(TopicSpec("orders", 2, retention=2 * DAY, max_bytes=1 << 30))
    assert spec == TopicSpec("orders", 2, retention=2 * DAY, max_bytes=1 << 30)
    for partition in (0, 1):
        info = await js.stream_info(f"FAUST_orders_{partition}")
        assert (info.config.max_age, info.config.max_bytes) == (2 * DAY, 1 << 30)
        assert (info.created, info.state.messages) == (created[partition], 3)
        assert f"stream FAUST_orders_{partition}: limits changed in place: max_age 7d -> 2d" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bridges.jetstream"):
        await other.declare(TopicSpec("orders", 2, retention=2 * DAY, max_bytes=1 << 30))
    assert caplog.records == [], "the same limits again change nothing"


async def test_a_changelog_made_before_its_bound_gets_it_in_place(
    registry: TopicRegistry, js: JetStreamContext, naming: Naming
) -> None:
    # What the code before retention settings made: no age, no byte cap, the oldest dropped.
    await js.add_stream(
        StreamConfig(name="FAUST_tbl_0", subjects=["faust.tbl.0.>"], max_msgs_per_subject=2, allow_direct=True)
    )
    topics = await js.key_value(naming.topics_bucket)
    await topics.create(naming.topic_key("tbl"), TopicSpec("tbl", 1, compacting=True, max_per_key=2).to_json())
    await publish(js, naming.key_subject("tbl", 0, b"a"))
    await (await fresh_registry(js, naming)).declare(TopicSpec("tbl", 1, compacting=True, max_per_key=2))
    info = await js.stream_info("FAUST_tbl_0")
    assert (info.config.max_bytes, info.config.discard, info.state.messages) == (DEFAULT_CHANGELOG_MAX_BYTES, "new", 1)


async def test_a_changelog_redeclared_as_an_ordinary_topic_keeps_its_kind_and_limits(
    registry: TopicRegistry, js: JetStreamContext, caplog: pytest.LogCaptureFixture
) -> None:
    await registry.declare(TopicSpec("tbl", 1, compacting=True))
    with caplog.at_level(logging.WARNING, logger="bridges.transport.topics"):
        spec = await (await fresh_registry(js, registry.naming)).declare(TopicSpec("tbl", 1, retention=60))
    assert spec.compacting and (await js.stream_info("FAUST_tbl_0")).config.max_age == 0.0
    assert "exists compacting; asked for the other kind" in caplog.text


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
