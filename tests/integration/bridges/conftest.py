"""A connected client, its JetStream context and a started topic registry on the test's server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from bridges.connection import ConnectionSettings, connect
from bridges.naming import Naming
from bridges.server import NatsServer
from bridges.transport.topics import TopicRegistry


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Client]:
    client = await connect(ConnectionSettings.from_urls(nats_server.url, connect_deadline=20))
    yield client
    await client.close()


@pytest.fixture
def js(nc: Client) -> JetStreamContext:
    return nc.jetstream()


@pytest.fixture
def naming() -> Naming:
    return Naming()


@pytest.fixture
async def registry(js: JetStreamContext, naming: Naming) -> TopicRegistry:
    registry = TopicRegistry(js, naming)
    await registry.start()
    return registry
