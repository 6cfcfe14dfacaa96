"""A real server with a tiny store: how it refuses writes once full, what the probe tells, that a
configuration reload gives it room again (and cannot take room away), and a group member that
waits for room to join."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.js.api import KeyValueConfig, StreamConfig
from nats.js.errors import APIError, KeyNotFoundError

from bridges.connection import ConnectionSettings, connect
from bridges.group import AssignResult, GroupCoordinator, GroupSettings
from bridges.limits import MIB
from bridges.naming import Naming
from bridges.server import NatsServer
from bridges.storage import probe_room, storage_full_from
from tables.errors import BrokenError
from testkit.storage import fill_store, raise_store_limit, store_config
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


class Member:
    """The group's listener and assigner, as small as a member can be: one topic, no partitions."""

    def __init__(self) -> None:
        self.assigned: list[int] = []

    def subscription(self) -> tuple[str, ...]:
        return ("t",)

    def metadata(self) -> bytes:
        return b""

    async def on_revoke(self, following: bytes | None) -> None: ...

    async def on_assign(self, generation: int, assignment: bytes) -> None:
        self.assigned.append(generation)

    def on_lost(self) -> None: ...

    async def assign(self, members: dict[str, object]) -> AssignResult:
        return AssignResult({m: b"" for m in members}, frozenset())

    async def topics_exist(self, topics: frozenset[str]) -> bool:
        return True


async def test_a_member_started_while_the_store_is_full_joins_once_there_is_room(tmp_path: Path) -> None:
    # Room for the group bucket's reserved 64 MiB, then filled.
    store = 80 * MIB
    config = store_config(tmp_path / "nats.conf", store)
    async with NatsServer(tmp_path / "nats", config_file=config) as server:
        client = await connect(ConnectionSettings.from_urls(server.url))
        member = Member()
        coordinator = GroupCoordinator(
            client, ConnectionSettings.from_urls(server.url), Naming(), "g",
            listener=member, assigner=member, settings=GroupSettings(session_timeout=3.0),
        )
        try:
            await coordinator.start()
            await fill_store(server.url, store)
            joining = asyncio.create_task(coordinator.update_subscription())
            await asyncio.sleep(1.5)  # a few tries of the join, each refused for lack of room
            assert not joining.done() and coordinator.member_id is None
            await raise_store_limit(server, 2 * store)
            await asyncio.wait_for(joining, 10)
            assert coordinator.member_id is not None
            await poll_until(lambda: member.assigned, timeout=10, what="the member's first assignment")
        finally:
            await coordinator.stop()
            await client.close()
