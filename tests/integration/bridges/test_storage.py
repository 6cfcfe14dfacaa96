"""A real server with a tiny store: how it refuses writes once full, what the probe tells, and
that a configuration reload gives it room again (and cannot take room away)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.js.api import KeyValueConfig, StreamConfig
from nats.js.errors import APIError, KeyNotFoundError

from bridges.connection import ConnectionSettings, connect
from bridges.limits import MIB
from bridges.server import NatsServer
from bridges.storage import probe_room, storage_full_from
from tables.errors import BrokenError
from testkit.workers import poll_until

pytestmark = pytest.mark.integration

STORE = 1 * MIB


def limit(config: Path, max_file_store: int) -> None:
    config.write_text(f"jetstream {{ max_file_store: {max_file_store} }}\n")


@pytest.fixture
async def tiny(tmp_path: Path) -> AsyncIterator[tuple[NatsServer, Client, Path]]:
    config = tmp_path / "nats.conf"
    limit(config, STORE)
    async with NatsServer(tmp_path / "nats", config_file=config) as server:
        client = await connect(ConnectionSettings.from_urls(server.url))
        try:
            yield server, client, config
        finally:
            await client.close()


async def fill(client: Client, subject: str) -> APIError:
    js = client.jetstream()
    while True:
        try:
            await js.publish(subject, b"\0" * 10_000)
        except APIError as exc:
            return exc


async def test_a_full_store_refuses_writes_the_probe_tells_and_a_reload_gives_room(
    tiny: tuple[NatsServer, Client, Path],
) -> None:
    server, client, config = tiny
    js = client.jetstream()
    await js.add_stream(StreamConfig(name="S", subjects=["s"]))
    assert await probe_room(client, "s") is None  # room: refused for its TTL, not for room

    refusal = storage_full_from(await fill(client, "s"), "s")
    assert refusal is not None and refusal.scope == "server"
    stored = (await js.stream_info("S")).state.messages
    still = await probe_room(client, "s")
    assert still is not None and still.description == "insufficient resources" and still.stream == "S"

    limit(config, 4 * STORE)
    await server.reload()
    assert await probe_room(client, "s") is None
    assert (await js.stream_info("S")).state.messages == stored  # the probes stored nothing
    await js.publish("s", b"fits again")

    limit(config, STORE)
    with pytest.raises(BrokenError, match="refused the new configuration.*decreasing jetstream max"):
        await server.reload()


async def test_while_the_store_is_full_expired_keys_stay_and_go_once_there_is_room(
    tiny: tuple[NatsServer, Client, Path],
) -> None:
    # What a lease does meanwhile: its delete marker is a write, so it waits for room too.
    server, client, config = tiny
    js = client.jetstream()
    kv = await js.create_key_value(KeyValueConfig(bucket="leases", limit_marker_ttl=1.0))
    await js.publish("$KV.leases.m", b"member", headers={"Nats-TTL": "1s"})
    await js.add_stream(StreamConfig(name="S", subjects=["s"]))
    await fill(client, "s")
    await asyncio.sleep(2.5)  # the TTL itself is what is waited for: 1 s, and the server's sweep
    assert (await kv.get("m")).value == b"member"
    await js.purge_stream("S")

    async def gone() -> bool:
        try:
            entry = await kv.get("m")
        except KeyNotFoundError:
            return True
        return entry.value is None

    await poll_until(gone, timeout=5, what="the expired key to go once there is room")
