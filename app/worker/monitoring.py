"""A worker's HTTP endpoint on ``METRICS_PORT``: ``/metrics``, ``/healthz`` and ``/readyz``.

- ``/metrics``: faust's own Prometheus sensors (:mod:`faust.sensors.prometheus`, named
  ``faust_*``: messages and events in, sends, commits, and the end and committed offsets of the
  assigned partitions as this transport reports them), the windowed runtime's metrics
  (:mod:`agents.windowed.monitoring`), the lag of every partition of this worker's group read
  from NATS (a live worker so reports a stopped one's too), rebalances, the event loop's
  heartbeat and the process (CPU, memory, open files).
- ``/healthz``: 200 while the process runs and its event loop keeps up; 503 once the app has
  crashed or the loop was blocked for 10 s (a loop blocked for good answers nothing: the probe's
  own timeout sees that).
- ``/readyz``: 200 once the partitions are assigned and recovered: faust's recovery has
  completed and no rebalance is under way, which is when faust logs "Worker ready"; 503 before,
  during a rebalance and while stopping. The body says which partitions of the events topic
  this worker holds.

The endpoint is a service of faust's Worker, started before the app and stopped after it, so it
answers (503) while the app starts and stops. It binds every interface: probes and Prometheus
reach a worker from outside its host, and it serves counts, never student data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final, cast

import faust
from aiohttp import web
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import AppT
from mode import Service
from prometheus_client import CollectorRegistry, Counter, Histogram, PlatformCollector, ProcessCollector

from app.monitoring import LoopWatch, NatsSampler, metrics_response
from bridges.transport.lag import LagReader, PartitionLag
from contract.names import EVENTS_TOPIC

__all__ = ["HEALTH_PATH", "METRICS_PATH", "READY_PATH", "RebalanceSensor", "WorkerEndpoint", "readiness"]

#: the endpoint's paths, named once: deployments point Prometheus and their probes at them
METRICS_PATH: Final = "/metrics"
HEALTH_PATH: Final = "/healthz"
READY_PATH: Final = "/readyz"

#: seconds a rebalance takes, from its start to its partitions recovered
_REBALANCE_BUCKETS: Final = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class RebalanceSensor(faust.Sensor):
    """Counts this worker's rebalances and how long each took (a faust sensor)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self._count = Counter("learning_streams_rebalances", "rebalances this worker went through", registry=registry)
        self._seconds = Histogram(
            "learning_streams_rebalance_seconds", "seconds from a rebalance's start to its partitions recovered",
            registry=registry, buckets=_REBALANCE_BUCKETS,
        )

    def on_rebalance_start(self, app: AppT) -> dict[str, Any]:
        self._count.inc()
        return {"started": time.monotonic()}

    def on_rebalance_end(self, app: AppT, state: dict[str, Any]) -> None:
        self._seconds.observe(time.monotonic() - state["started"])


def readiness(app: faust.App) -> tuple[bool, dict[str, Any]]:
    """Whether the worker's partitions are assigned and recovered, and what ``/readyz`` says."""
    recovered = app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]  # TableManager's
    ready = recovered and not app.rebalancing and not app.in_recovery and not app.should_stop
    body: dict[str, Any] = {"status": "ok" if ready else "unavailable"}
    if ready:
        body["partitions"] = sorted(tp.partition for tp in app.consumer.assignment() if tp.topic == EVENTS_TOPIC)
    elif app.should_stop:
        body["reason"] = "stopping"
    else:
        body["reason"] = "rebalancing" if recovered else "starting"
    return ready, body


def install_sensors(app: faust.App, registry: CollectorRegistry) -> RebalanceSensor:
    """faust's Prometheus sensors as the app's monitor, with metric names starting ``faust_``;
    returns the rebalance sensor to hand to faust's Worker."""
    app.monitor = PrometheusMonitor(metrics=FaustMetrics.create(registry, "faust"))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return RebalanceSensor(registry)


def group_lag(app: faust.App) -> Callable[[], Any]:
    """Reads the lag of every partition of the events topic for this app's group."""
    reader: LagReader | None = None

    async def read() -> list[PartitionLag]:
        nonlocal reader
        if reader is None:
            session = cast(Any, app.transport).session  # the nats:// transport's (faust's type has none)
            reader = LagReader(session.js, session.naming, EVENTS_TOPIC, groups=[app.conf.id])
        return await reader.read()

    return read


class WorkerEndpoint(Service):
    """The HTTP endpoint of one worker (see the module docstring); a service of faust's Worker."""

    def __init__(self, app: faust.App, registry: CollectorRegistry, *, port: int, host: str = "0.0.0.0") -> None:  # noqa: S104
        super().__init__()
        self._app = app
        self._registry = registry
        self._port = port
        self._host = host
        self._watch = LoopWatch()
        self._sampler = NatsSampler(read_lag=group_lag(app))
        registry.register(self._watch)
        registry.register(self._sampler)
        self._runner: web.AppRunner | None = None

    async def on_start(self) -> None:
        self._watch.start()
        http = web.Application()
        http.router.add_get(METRICS_PATH, self._metrics)
        http.router.add_get(HEALTH_PATH, self._health)
        http.router.add_get(READY_PATH, self._ready)
        self._runner = web.AppRunner(http, handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        port = self._runner.addresses[0][1]
        host = "127.0.0.1" if self._host == "0.0.0.0" else self._host  # noqa: S104
        # What a supervisor or a test reads to find the port when METRICS_PORT is 0.
        print(f"metrics listening on http://{host}:{port}", flush=True)

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        await self._watch.stop()

    async def _metrics(self, request: web.Request) -> web.Response:
        return await metrics_response(self._registry, [self._sampler])

    async def _health(self, request: web.Request) -> web.Response:
        if self._app.crashed:
            return web.json_response({"status": "unavailable", "reason": "crashed"}, status=503)
        if not self._watch.responsive:
            stale = round(self._watch.stale_for, 1)
            return web.json_response({"status": "unavailable", "reason": f"event loop blocked {stale} s"}, status=503)
        return web.json_response({"status": "ok"})

    async def _ready(self, request: web.Request) -> web.Response:
        ready, body = readiness(self._app)
        return web.json_response(body, status=200 if ready else 503)
