"""A fresh nats-server per stage: port 0, a temporary store, a client of it, all gone afterwards."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import nats
from nats.aio.client import Client

from bridges.server import NatsServer

__all__ = ["fresh_server", "serving"]


@asynccontextmanager
async def fresh_server() -> AsyncIterator[tuple[str, Client, Path]]:
    """A fresh nats-server, a client of it and a scratch directory, all gone afterwards."""
    async with serving() as (server, client, base):
        yield server.url, client, base


@asynccontextmanager
async def serving() -> AsyncIterator[tuple[NatsServer, Client, Path]]:
    """:func:`fresh_server`, with the server itself (its process, for its CPU)."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        base = Path(tmp)
        async with NatsServer(base / "nats") as server:
            client = await nats.connect(server.url)
            try:
                yield server, client, base
            finally:
                await client.close()
