"""Figures read from NATS when ``/metrics`` is scraped: each group's lag and the streams' storage.

Reading them costs a few requests to NATS, so they are read at scrape time (Prometheus's period,
typically 15-30 s), never per message, and at most once per ``min_interval`` however many
scrapers ask: concurrent scrapes share one reading. A scrape waits at most ``timeout`` for it;
past that, or when NATS cannot be read, the figures are left out of the answer (an alert on an
absent series catches that) and ``learning_streams_nats_sample_failures_total`` counts it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bridges.transport.lag import PartitionLag
from bridges.usage import AccountUsage, StreamUsage

__all__ = ["NatsSampler"]

log = logging.getLogger(__name__)

ReadLag = Callable[[], Awaitable[list[PartitionLag]]]
ReadUsage = Callable[[], Awaitable[tuple[AccountUsage, list[StreamUsage]]]]


class NatsSampler(Collector):
    """A collector of what ``read_lag`` and ``read_usage`` (either may be None) last returned."""

    def __init__(
        self,
        *,
        read_lag: ReadLag | None = None,
        read_usage: ReadUsage | None = None,
        min_interval: float = 1.0,
        timeout: float = 2.0,
    ) -> None:
        self._read_lag = read_lag
        self._read_usage = read_usage
        self._min_interval = min_interval
        self._timeout = timeout
        self._lag: list[PartitionLag] | None = None
        self._usage: tuple[AccountUsage, list[StreamUsage]] | None = None
        self._failures = 0
        self._read_at = float("-inf")
        self._reading: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        """Read again unless a reading is under way or younger than ``min_interval``; wait for it
        at most ``timeout`` (it goes on in the background and serves the next scrape)."""
        if self._reading is None or (self._reading.done() and time.monotonic() - self._read_at >= self._min_interval):
            self._read_at = time.monotonic()
            self._reading = asyncio.get_running_loop().create_task(self._read(), name="nats-sampler")
        if not self._reading.done():
            await asyncio.wait({self._reading}, timeout=self._timeout)

    async def _read(self) -> None:
        if self._read_lag is not None:
            try:
                self._lag = await self._read_lag()
            except Exception as exc:  # noqa: BLE001 - NATS away: counted, the figures left out
                self._lag = None
                self._failed("lag", exc)
        if self._read_usage is not None:
            try:
                self._usage = await self._read_usage()
            except Exception as exc:  # noqa: BLE001 - as above
                self._usage = None
                self._failed("storage", exc)

    def _failed(self, what: str, exc: Exception) -> None:
        self._failures += 1
        log.warning("reading the %s for /metrics failed: %s", what, exc or type(exc).__name__)

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "learning_streams_nats_sample_failures", "readings of lag or storage from NATS that failed",
            value=self._failures,
        )
        if self._lag is not None:
            lag = GaugeMetricFamily(
                "learning_streams_consumer_lag",
                "records of a partition the group has not committed yet (end offset - committed offset)",
                labels=["group", "topic", "partition"],
            )
            for found in self._lag:
                lag.add_metric([found.group, found.topic, str(found.partition)], found.lag)
            yield lag
        if self._usage is not None:
            yield from _usage_families(*self._usage)


def _usage_families(account: AccountUsage, streams: list[StreamUsage]) -> Iterator[Metric]:
    used = GaugeMetricFamily("learning_streams_stream_bytes", "bytes a stream (or bucket) holds", labels=["stream"])
    cap = GaugeMetricFamily(
        "learning_streams_stream_max_bytes", "a stream's byte cap (streams without one are left out)", labels=["stream"]
    )
    full = GaugeMetricFamily(
        "learning_streams_stream_full",
        "1 when a capped stream has less room than its largest message: a bucket refuses writes, a stream "
        "drops its oldest records",
        labels=["stream", "discard"],
    )
    for stream in streams:
        used.add_metric([stream.stream], stream.bytes)
        if stream.max_bytes > 0:
            cap.add_metric([stream.stream], stream.max_bytes)
            full.add_metric([stream.stream, stream.discard], 1 if stream.full else 0)
    yield used
    yield cap
    yield full
    yield GaugeMetricFamily(
        "learning_streams_jetstream_storage_bytes", "file storage the JetStream account uses", value=account.bytes
    )
    if account.max_bytes > 0:
        yield GaugeMetricFamily(
            "learning_streams_jetstream_storage_max_bytes", "the JetStream account's file storage limit",
            value=account.max_bytes,
        )
