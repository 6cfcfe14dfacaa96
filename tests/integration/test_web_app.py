"""The web application's own endpoints: health, readiness, and the OpenAPI document it serves."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from app.web.openapi import openapi_document
from bridges.server import NatsServer
from testkit.web import running_web
from testkit.workers import poll_until

pytestmark = pytest.mark.integration


async def test_health_and_readiness(nats_server: NatsServer) -> None:
    async with running_web(nats_server.url) as web:
        for path in ("/healthz", "/readyz"):
            response = await web.http.get(path)
            assert (response.status, await response.json()) == (200, {"status": "ok"})


async def test_readiness_follows_nats(nats_server: NatsServer) -> None:
    async with running_web(nats_server.url) as web:

        def readiness_is(status: int) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return (await web.http.get("/readyz")).status == status

            return check

        assert await readiness_is(200)()
        await nats_server.kill()
        await poll_until(readiness_is(503), timeout=15, what="readyz to answer 503")
        assert (await web.http.get("/healthz")).status == 200  # alive all the same
        await nats_server.restart(graceful=False)
        await poll_until(readiness_is(200), timeout=20, what="readyz to answer 200 again")


async def test_readiness_needs_the_nats_ingest_consumer(nats_server: NatsServer) -> None:
    async with running_web(nats_server.url) as web:
        await web.services.ingest.close()
        response = await web.http.get("/readyz")
        assert (response.status, await response.json()) == (
            503, {"status": "unavailable", "reason": "the NATS ingest consumer is not running"},
        )
        assert response.headers["Retry-After"] == "2"


async def test_the_openapi_document_is_served_and_lists_exactly_the_routes(nats_server: NatsServer) -> None:
    async with running_web(nats_server.url) as web:
        response = await web.http.get("/openapi.json")
        assert response.status == 200
        assert response.content_type == "application/json"
        document = await response.json()
        assert document == openapi_document()
        app = web.http.server.app
        assert app is not None
        routes = {
            (route.resource.canonical, route.method.lower())
            for route in app.router.routes()
            if route.method != "HEAD" and route.resource is not None
        }
        described = {(path, method) for path, item in document["paths"].items() for method in item}
        assert routes == described


async def test_unknown_paths_and_methods(nats_server: NatsServer) -> None:
    async with running_web(nats_server.url) as web:
        assert (await web.http.get("/v1/events")).status == 405
        assert (await web.http.get("/v2/metrics/engagement/s1")).status == 404
        assert (await web.http.get("/v1/metrics/engagement")).status == 404
