"""The ``/metrics`` answer of every process: fresh samples, then the registry as Prometheus text."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from app.monitoring.sampler import NatsSampler

__all__ = ["metrics_response"]


async def metrics_response(registry: CollectorRegistry, samplers: Iterable[NatsSampler] = ()) -> web.Response:
    """Refresh what is read from NATS on scrape (each sampler waits a bounded time), then render."""
    for sampler in samplers:
        await sampler.refresh()
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
