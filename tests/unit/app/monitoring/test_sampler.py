"""NatsSampler: read when scraped, at most once per interval, shared by concurrent scrapes, and
left out (and counted) when NATS cannot be read."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from app.monitoring import NatsSampler
from bridges.transport.lag import PartitionLag
from bridges.usage import AccountUsage, StreamUsage
from tables.errors import BrokenError


class Lags:
    def __init__(self) -> None:
        self.reads = 0
        self.failing = False
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> list[PartitionLag]:
        self.reads += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failing:
            raise BrokenError("NATS is not connected")
        return [PartitionLag("progression", "events", 0, earliest=1, end=11, committed=4)]


async def usage() -> tuple[AccountUsage, list[StreamUsage]]:
    return AccountUsage(5000, -1), [
        StreamUsage("KV_metrics", 4000, 10, max_bytes=4096, discard="new", largest=1024),
        StreamUsage("FAUST_events_0", 1000, 3, max_bytes=-1, discard="old", largest=1024),
    ]


LAG = {"group": "progression", "topic": "events", "partition": "0"}


def registry_of(sampler: NatsSampler) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(sampler)
    return registry


async def test_lag_and_storage_are_read_when_scraped() -> None:
    sampler = NatsSampler(read_lag=Lags(), read_usage=usage)
    registry = registry_of(sampler)
    assert registry.get_sample_value("learning_streams_consumer_lag", LAG) is None
    await sampler.refresh()
    assert registry.get_sample_value(
        "learning_streams_consumer_lag", LAG
    ) == 7
    assert registry.get_sample_value("learning_streams_stream_full", {"stream": "KV_metrics", "discard": "new"}) == 1
    assert registry.get_sample_value("learning_streams_stream_max_bytes", {"stream": "FAUST_events_0"}) is None
    assert registry.get_sample_value("learning_streams_jetstream_storage_bytes") == 5000
    families = {f.name for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert "learning_streams_stream_bytes" in families


async def test_scrapes_within_the_interval_share_one_reading() -> None:
    lags = Lags()
    sampler = NatsSampler(read_lag=lags, min_interval=60)
    await asyncio.gather(*(sampler.refresh() for _ in range(5)))
    await sampler.refresh()
    assert lags.reads == 1


async def test_a_slow_reading_holds_a_scrape_no_longer_than_the_timeout() -> None:
    lags = Lags()
    lags.gate = asyncio.Event()
    sampler = NatsSampler(read_lag=lags, timeout=0.05, min_interval=0)
    await asyncio.wait_for(sampler.refresh(), 1.0)  # answered without the figures
    assert registry_of(sampler).get_sample_value(
        "learning_streams_consumer_lag", LAG
    ) is None
    lags.gate.set()
    await sampler.refresh()  # the reading under way finishes and serves this scrape
    assert lags.reads == 1


async def test_a_failed_reading_is_counted_and_its_figures_left_out() -> None:
    lags = Lags()
    sampler = NatsSampler(read_lag=lags, min_interval=0)
    registry = registry_of(sampler)
    await sampler.refresh()
    lags.failing = True
    await sampler.refresh()
    assert registry.get_sample_value("learning_streams_nats_sample_failures_total") == 1
    assert registry.get_sample_value(
        "learning_streams_consumer_lag", LAG
    ) is None
