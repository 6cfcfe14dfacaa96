"""``GET /metrics`` of the web process: ingest's counts, every group's lag, the streams' storage.

- HTTP and NATS ingest: events stored and events the streams held already
  (``learning_streams_ingest_events_total{path, result}``), and what was refused
  (``learning_streams_ingest_refused_total{path, reason}``: an HTTP request counts once, by the
  status it was answered with; a NATS message is ``invalid`` (dead-lettered) or ``retried``
  (given back to the ingest stream, NATS being unavailable)). Read from the handlers' own counts
  when scraped: nothing is added to a request's path.
- Every consumer group's lag per partition of the events topic and the storage of every stream
  and of the JetStream account, read from NATS when scraped (:mod:`app.monitoring.sampler`): the
  web process runs whether or not the workers do, so it is where a stopped worker's lag shows.
- The event loop's heartbeat (also what ``/healthz`` reads) and the process.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from aiohttp import web
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from app.monitoring import LoopWatch, NatsSampler, metrics_response
from app.web.ingest import IngestCounts
from app.web.services import WebServices
from bridges.naming import Naming
from bridges.transport.lag import LagReader, PartitionLag
from bridges.usage import AccountUsage, StreamUsage, read_usage
from contract.names import EVENTS_TOPIC
from tables.errors import ClosedError

__all__ = ["WebMetrics"]

#: HTTP status -> the reason a refused ingest request is counted under
_REASONS: Final = {
    400: "malformed",
    401: "unauthorized",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    503: "unavailable",
}


class _IngestCollector(Collector):
    def __init__(self, http: IngestCounts, services: WebServices) -> None:
        self._http = http
        self._services = services

    def collect(self) -> Iterator[Metric]:
        events = CounterMetricFamily(
            "learning_streams_ingest_events",
            "events ingested: accepted (stored now) or duplicate (the streams held it already)",
            labels=["path", "result"],
        )
        refused = CounterMetricFamily(
            "learning_streams_ingest_refused",
            "HTTP requests refused, by the reason their status gives; NATS messages dead-lettered as invalid "
            "or given back to be retried",
            labels=["path", "reason"],
        )
        http = self._http
        events.add_metric(["http", "accepted"], http.accepted)
        events.add_metric(["http", "duplicate"], http.duplicates)
        for status, count in sorted(http.refused.items()):
            refused.add_metric(["http", _REASONS.get(status, str(status))], count)
        try:
            nats = self._services.ingest.stats
        except ClosedError:
            pass
        else:
            events.add_metric(["nats", "accepted"], nats.forwarded - nats.duplicates)
            events.add_metric(["nats", "duplicate"], nats.duplicates)
            refused.add_metric(["nats", "invalid"], nats.dead_lettered)
            refused.add_metric(["nats", "retried"], nats.retried)
        yield events
        yield refused


class WebMetrics:
    """The web process's registry and what fills it (see the module docstring).

    The loop heartbeat runs while the aiohttp application does (:meth:`attach`).
    """

    def __init__(self, services: WebServices, http: IngestCounts) -> None:
        self._services = services
        self.registry = CollectorRegistry()
        self.loop = LoopWatch()
        self._sampler = NatsSampler(read_lag=self._read_lag, read_usage=self._read_usage)
        self._lag: LagReader | None = None
        for collector in (_IngestCollector(http, services), self._sampler, self.loop):
            self.registry.register(collector)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    def attach(self, app: web.Application) -> None:
        """Start the heartbeat with ``app`` and stop it at its cleanup."""

        async def start(_: web.Application) -> None:
            self.loop.start()

        async def stop(_: web.Application) -> None:
            await self.loop.stop()

        app.on_startup.append(start)
        app.on_cleanup.append(stop)

    async def handle(self, request: web.Request) -> web.Response:
        return await metrics_response(self.registry, [self._sampler])

    async def _read_lag(self) -> list[PartitionLag]:
        if self._lag is None:
            naming = Naming(self._services.options.prefix)
            self._lag = LagReader(self._services.client.jetstream(), naming, EVENTS_TOPIC)
        return await self._lag.read()

    async def _read_usage(self) -> tuple[AccountUsage, list[StreamUsage]]:
        return await read_usage(self._services.client)
