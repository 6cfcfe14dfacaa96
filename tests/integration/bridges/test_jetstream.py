"""Idempotent stream and bucket creation against a real server, and limits changed in place."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StreamConfig

from bridges.connection import ConnectionSettings, connect
from bridges.jetstream import STATE_BUCKET_MAX_BYTES, ensure_bucket, ensure_stream
from bridges.server import NatsServer
from tables.errors import BrokenError

pytestmark = pytest.mark.integration


async def test_ensure_stream_keeps_an_existing_stream_with_another_config_and_warns(
    js: JetStreamContext, caplog: pytest.LogCaptureFixture
) -> None:
    await ensure_stream(js, StreamConfig(name="S", subjects=["s.a"]))
    with caplog.at_level(logging.WARNING, logger="bridges.jetstream"):
        await ensure_stream(js, StreamConfig(name="S", subjects=["s.b"]))
    assert (await js.stream_info("S")).config.subjects == ["s.a"]
    assert "S exists with a different configuration" in caplog.text


async def test_ensure_stream_with_the_same_config_is_quiet(
    js: JetStreamContext, caplog: pytest.LogCaptureFixture
) -> None:
    config = StreamConfig(name="S", subjects=["s.a"])
    with caplog.at_level(logging.WARNING, logger="bridges.jetstream"):
        await ensure_stream(js, config)
        await ensure_stream(js, config)
    assert caplog.records == []


async def test_ensure_stream_reports_other_refusals_as_broken(js: JetStreamContext) -> None:
    await ensure_stream(js, StreamConfig(name="S", subjects=["s.>"]))
    with pytest.raises(BrokenError, match="cannot create stream T"):
        await ensure_stream(js, StreamConfig(name="T", subjects=["s.a"]))  # overlaps S


async def test_concurrent_ensure_bucket_calls_share_one_bucket(js: JetStreamContext) -> None:
    buckets = await asyncio.gather(*(ensure_bucket(js, "b", history=2) for _ in range(5)))
    await buckets[0].put("k", b"v")
    for bucket in buckets:
        assert (await bucket.get("k")).value == b"v"
    assert (await buckets[-1].status()).history == 2


async def test_processes_creating_one_capped_stream_at_once_near_a_full_store_all_get_it(tmp_path: Path) -> None:
    # Workers starting together create the same capped buckets. With the store's reservations
    # within one cap of full, nats-server refuses the ones that lose the race "insufficient
    # storage" though the stream is there: a worker then died at start (CI, test_storage_full).
    # Each round is a fresh race; before the fix most rounds lost one.
    mib = 1 << 20
    (tmp_path / "store.conf").write_text(f"jetstream {{ max_file_store: {64 * mib} }}\n")
    async with NatsServer(tmp_path / "nats", config_file=tmp_path / "store.conf") as server:
        clients = [await connect(ConnectionSettings.from_urls(server.url)) for _ in range(4)]
        try:
            contexts = [client.jetstream() for client in clients]
            await contexts[0].add_stream(StreamConfig(name="RESERVED", subjects=["reserved"], max_bytes=40 * mib))
            for round_ in range(6):
                buckets = await asyncio.gather(
                    *(ensure_bucket(js, f"b{round_}", max_bytes=16 * mib) for js in contexts)
                )
                await buckets[0].put("k", b"v")
                assert [(await bucket.get("k")).value for bucket in buckets] == [b"v"] * len(buckets)
                await contexts[0].delete_key_value(f"b{round_}")  # one cap short of full again
                await asyncio.gather(*(
                    ensure_stream(js, StreamConfig(name=f"S{round_}", subjects=[f"s{round_}"], max_bytes=16 * mib))
                    for js in contexts
                ))
                assert (await contexts[0].stream_info(f"S{round_}")).config.max_bytes == 16 * mib
                await contexts[0].delete_stream(f"S{round_}")
            # A stream that does not fit is still refused, with the reason.
            with pytest.raises(BrokenError, match="cannot create KV bucket big: insufficient storage"):
                await ensure_bucket(contexts[0], "big", max_bytes=32 * mib)
        finally:
            for client in clients:
                await client.close()


# -- limits of existing streams and buckets --------------------------------------------------

DAY = 86400.0


async def test_an_existing_streams_limits_change_in_place_and_its_messages_stay(
    js: JetStreamContext, caplog: pytest.LogCaptureFixture
) -> None:
    await js.add_stream(StreamConfig(name="S", subjects=["s"]))  # kept forever, as before settings
    for n in range(5):
        await js.publish("s", f"m{n}".encode())
    before = await js.stream_info("S")
    with caplog.at_level(logging.WARNING, logger="bridges.jetstream"):
        await ensure_stream(js, StreamConfig(name="S", subjects=["s"], max_age=7 * DAY, max_bytes=1 << 30))
    after = await js.stream_info("S")
    assert (after.config.max_age, after.config.max_bytes) == (7 * DAY, 1 << 30)
    assert after.created == before.created, "updated in place, not recreated"
    assert (after.state.messages, after.state.first_seq) == (5, 1)
    assert "stream S: limits changed in place: max_age unlimited -> 7d; max_bytes unlimited -> 1 GiB" in caplog.text


async def test_a_reader_uses_an_existing_stream_as_it_is_and_says_so(
    js: JetStreamContext, caplog: pytest.LogCaptureFixture
) -> None:
    await ensure_stream(js, StreamConfig(name="S", subjects=["s"], max_age=DAY))
    with caplog.at_level(logging.WARNING, logger="bridges.jetstream"):
        await ensure_stream(js, StreamConfig(name="S", subjects=["s"], max_age=2 * DAY), update_limits=False)
    assert (await js.stream_info("S")).config.max_age == DAY
    assert "S exists with a different configuration (limits); using it as it is" in caplog.text


async def test_a_duplicate_window_longer_than_the_age_is_capped_not_refused(js: JetStreamContext) -> None:
    await ensure_stream(js, StreamConfig(name="S", subjects=["s"], max_age=1.0, duplicate_window=120.0))
    assert (await js.stream_info("S")).config.duplicate_window == 1.0
    await ensure_stream(js, StreamConfig(name="S", subjects=["s"], max_age=0.5, duplicate_window=120.0))
    assert (await js.stream_info("S")).config.duplicate_window == 0.5


async def test_a_change_jetstream_refuses_is_logged_and_the_stream_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A server whose store is smaller than the cap asked for: JetStream refuses the update.
    (tmp_path / "small.conf").write_text("jetstream { max_file_store: 64MB }\n")
    async with NatsServer(tmp_path / "nats", config_file=tmp_path / "small.conf") as server:
        client = await connect(ConnectionSettings.from_urls(server.url))
        try:
            js = client.jetstream()
            await ensure_stream(js, StreamConfig(name="S", subjects=["s"], max_bytes=1 << 20))
            await js.publish("s", b"kept")
            with caplog.at_level(logging.WARNING, logger="bridges.jetstream"):
                await ensure_stream(js, StreamConfig(name="S", subjects=["s"], max_bytes=1 << 30))
            info = await js.stream_info("S")
            with pytest.raises(BrokenError) as refused:
                await ensure_stream(js, StreamConfig(name="T", subjects=["t"], max_bytes=1 << 30))
        finally:
            await client.close()
    assert "cannot create stream T: insufficient storage" in str(refused.value)
    assert "reserves each stream's max_bytes" in str(refused.value)
    assert (info.config.max_bytes, info.state.messages) == (1 << 20, 1)
    (record,) = [r for r in caplog.records if r.name == "bridges.jetstream"]
    assert record.levelno == logging.ERROR
    message = record.getMessage()
    assert "stream S: JetStream refused to change its limits in place (max_bytes 1 MiB -> 1 GiB)" in message
    assert "insufficient storage" in message and "keeps its current limits and messages" in message


async def test_an_unbounded_bucket_gets_its_bound_in_place(
    js: JetStreamContext, caplog: pytest.LogCaptureFixture
) -> None:
    kv = await js.create_key_value(KeyValueConfig(bucket="state"))  # as the code before made them
    await kv.put("k", b"v")
    with caplog.at_level(logging.WARNING, logger="bridges.jetstream"):
        again = await ensure_bucket(js, "state")
    info = await js.stream_info("KV_state")
    assert (info.config.max_age, info.config.max_bytes) == (0.0, STATE_BUCKET_MAX_BYTES)
    assert (await again.get("k")).value == b"v"
    assert "stream KV_state: limits changed in place: max_bytes unlimited -> 64 MiB" in caplog.text
    await ensure_bucket(js, "state", ttl=30 * DAY, max_bytes=-1, update_limits=False)
    assert (await js.stream_info("KV_state")).config.max_bytes == STATE_BUCKET_MAX_BYTES


async def test_a_bucket_ttl_change_keeps_its_values(js: JetStreamContext) -> None:
    kv = await ensure_bucket(js, "metrics", ttl=90 * DAY, max_bytes=-1)
    await kv.put("k", b"v")
    await ensure_bucket(js, "metrics", ttl=30 * DAY, max_bytes=2 << 30)
    info = await js.stream_info("KV_metrics")
    assert (info.config.max_age, info.config.max_bytes, info.config.discard) == (30 * DAY, 2 << 30, "new")
    assert (await kv.get("k")).value == b"v"
