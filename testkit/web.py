"""The web application against a real nats-server, served on a free port, for integration tests.

:func:`running_web` starts :class:`~app.web.services.WebServices` (connection, sink, reader, NATS
ingest) and serves :func:`~app.web.process.make_web_app` with aiohttp's test server, which binds port 0.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from app.web import WebOptions, WebServices, make_web_app
from bridges.connection import ConnectionSettings, Secret
from bridges.public.durable_puller import PullerConfig
from testkit.streams import PARTITIONS

__all__ = ["WebHarness", "running_web", "token_comparisons"]


@dataclass
class WebHarness:
    http: TestClient[Any, Any]
    services: WebServices
    nats_url: str

    async def post(self, body: Any, *, headers: dict[str, str] | None = None) -> ClientResponse:
        """POST a JSON-serialisable body (or raw bytes) to /v1/events."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        # BytesIO: aiohttp warns about raw bytes over 1 MiB (and sends it with a Content-Length).
        return await self.http.post(
            "/v1/events", data=io.BytesIO(data), headers={"Content-Type": "application/json", **(headers or {})}
        )


@asynccontextmanager
async def running_web(
    nats_url: str,
    *,
    token: str | None = None,
    clock: Callable[[], float] = time.time,
    ack_deadline: float = 10.0,
    puller: PullerConfig = PullerConfig(expires=0.5),
) -> AsyncIterator[WebHarness]:
    options = WebOptions(partitions=PARTITIONS, ack_deadline=ack_deadline, puller=puller, stop_timeout=3.0)
    services = WebServices(ConnectionSettings.from_urls(nats_url), options, clock=clock)
    async with services:
        app = make_web_app(services, ingest_token=Secret(token) if token else None, clock=clock)
        async with TestServer(app) as server:
            http: TestClient[Any, Any] = TestClient(server)
            async with http:
                yield WebHarness(http, services, nats_url)


def token_comparisons(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, bytes]]:
    """Every (given, expected) pair the web process's token check compares from now on, by
    ``hmac.compare_digest`` (constant time), as the check in :mod:`app.access` calls it."""
    import app.access as access

    compared: list[tuple[bytes, bytes]] = []
    real = access.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(access.hmac, "compare_digest", spy)
    return compared
