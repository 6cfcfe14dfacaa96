"""Every request handler of the HTTP API, over started :class:`~app.web.services.WebServices`:
what the route table (:mod:`app.web.routes`) points each route at."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from app.web.doors import Doors
from app.web.ingest import IngestHandler
from app.web.metric_schemas import with_metrics
from app.web.models import Health, json_response
from app.web.query import QueryHandlers
from app.web.services import WebServices
from app.web.telemetry import WebMetrics
from bridges.connection import Secret
from tables.errors import BrokenError, ClosedError

__all__ = ["ApiHandlers"]


class ApiHandlers:
    """The handlers of one application: ingest, the queries, health, readiness, metrics, OpenAPI.

    Args:
        services: the NATS side (started and closed by the caller).
        document: the OpenAPI document ``GET /openapi.json`` serves.
        ingest_token: when set, the bearer token ingest requires.
        retry_after: seconds a 503 answer asks the client to wait.
        doors: ingest's body deadline and concurrency.
        clock: the server's wall clock (ingest's "5 minutes ahead" rule).
    """

    def __init__(
        self,
        services: WebServices,
        *,
        document: dict[str, Any],
        ingest_token: Secret | None = None,
        retry_after: int = 2,
        doors: Doors = Doors(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ingest = IngestHandler(
            services.sink, token=ingest_token, retry_after=retry_after, body_seconds=doors.body_seconds,
            concurrency=doors.ingest_concurrency, clock=clock,
        )
        self.query = QueryHandlers(services.reader, retry_after=retry_after)
        self.metrics = WebMetrics(services, self.ingest.counts)
        self._services = services
        self._document = document
        self._retry_after = retry_after

    async def health(self, request: web.Request) -> web.Response:
        if not self.metrics.loop.responsive:  # the loop was blocked (its heartbeat is stale)
            return json_response(503, Health(status="unavailable").model_dump(exclude_none=True))
        return json_response(200, Health(status="ok").model_dump(exclude_none=True))

    async def readiness(self, request: web.Request) -> web.Response:
        reason = await self._services.unready_because()
        if reason is None:
            return json_response(200, Health(status="ok").model_dump(exclude_none=True))
        return json_response(
            503, Health(status="unavailable", reason=reason).model_dump(exclude_none=True),
            headers={"Retry-After": str(self._retry_after)},
        )

    async def openapi(self, request: web.Request) -> web.Response:
        """The document, with the metrics running now (:func:`~app.web.openapi.with_metrics`)."""
        try:
            metrics = await self._services.reader.registry.all()
        except (BrokenError, ClosedError):
            metrics = self._services.reader.registry.known()  # NATS away: what was last read
        return json_response(200, with_metrics(self._document, metrics))
