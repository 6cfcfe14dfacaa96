"""Idempotent stream and bucket creation against a real server."""

from __future__ import annotations

import asyncio
import logging

import pytest
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from bridges.jetstream import ensure_bucket, ensure_stream
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
