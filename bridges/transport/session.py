"""The NATS resources one faust app shares between its consumer and its producer.

One connection, one topic registry, one pipelined publisher and the fence book (which changelog
partitions this worker owns, and the fence sequence its writes to them must state), with the
member lease's local deadline for writes no server-side fence covers (final results). The consumer
and the producer each :meth:`acquire` it when they start and :meth:`release` it when they stop;
the first acquire connects and the last release drains and closes, so the producer can keep
sending while the consumer commits its final offsets.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.aio.client import Client
from nats.js import JetStreamContext

from bridges.connection import ConnectionSettings, connect, disconnect
from bridges.group.lease_clock import UNFENCED, LeaseClock
from bridges.naming import Naming
from bridges.storage import StorageState
from bridges.transport.options import TransportOptions
from bridges.transport.publisher import PipelinedPublisher
from bridges.transport.topics import TopicRegistry, TopicSpec
from tables.errors import ClosedError

__all__ = ["Fence", "TransportSession", "partition_for_key"]

log = logging.getLogger(__name__)


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition of a key: CRC-32 modulo the partition count.

    Stable across processes and languages (HTTP ingest and other NATS clients compute it the same
    way to put one student's events in one partition).
    """
    return zlib.crc32(key) % partitions


@dataclass(frozen=True)
class Fence:
    """The fence a changelog partition's owner wrote; its writes must expect it."""

    subject: str
    sequence: int

    def headers(self) -> dict[str, str]:
        return {
            "Nats-Expected-Last-Subject-Sequence": str(self.sequence),
            "Nats-Expected-Last-Subject-Sequence-Subject": self.subject,
        }


class TransportSession:
    def __init__(self, settings: ConnectionSettings, options: TransportOptions, app_id: str) -> None:
        self.settings = settings
        self.options = options
        self.naming = Naming(options.prefix)
        self.app_id = app_id
        self.fences: dict[tuple[str, int], Fence] = {}
        #: the group membership's lease deadline, set by the consumer once it joins a group;
        #: a client-only app belongs to none, and nobody can take over what it writes
        self.lease: LeaseClock = UNFENCED
        #: whether JetStream refuses this worker's state, results and offsets for lack of room
        self.storage = StorageState(
            f"worker {app_id}",
            "its results, state and offsets are kept, and commits are retried with backoff",
        )
        self._users = 0
        self._lock = asyncio.Lock()
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._registry: TopicRegistry | None = None
        self._publisher: PipelinedPublisher | None = None
        self._reconnect_listeners: list[Callable[[], Awaitable[None]]] = []

    # -- lifecycle ------------------------------------------------------------------------

    async def acquire(self) -> None:
        async with self._lock:
            if self._users == 0:
                await self._open()
            self._users += 1

    async def release(self) -> None:
        async with self._lock:
            if self._users == 0:
                return
            self._users -= 1
            if self._users == 0:
                await self._close()

    async def _open(self) -> None:
        client = await connect(
            self.settings, name=f"{self.settings.name}:{self.app_id}", on_reconnected=self._reconnected
        )
        self._client = client
        self._js = client.jetstream()
        self._registry = TopicRegistry(self._js, self.naming, replicas=self.options.replicas)
        await self._registry.start()
        self._publisher = await PipelinedPublisher(
            client,
            max_in_flight=self.options.max_in_flight,
            ack_timeout=self.options.ack_timeout,
            serial_fences=self.options.replicas > 1,
        ).start()

    async def _close(self) -> None:
        if self._publisher is not None:
            await self._publisher.close()
        if self._client is not None:
            await disconnect(self._client)
        self._client = self._js = self._registry = self._publisher = None
        self.fences.clear()

    def on_reconnected(self, listener: Callable[[], Awaitable[None]]) -> None:
        self._reconnect_listeners.append(listener)

    async def _reconnected(self) -> None:
        for listener in list(self._reconnect_listeners):
            await listener()

    # -- resources ------------------------------------------------------------------------

    @property
    def client(self) -> Client:
        if self._client is None:
            raise ClosedError("the NATS session is not open")
        return self._client

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise ClosedError("the NATS session is not open")
        return self._js

    @property
    def registry(self) -> TopicRegistry:
        if self._registry is None:
            raise ClosedError("the NATS session is not open")
        return self._registry

    @property
    def publisher(self) -> PipelinedPublisher:
        if self._publisher is None:
            raise ClosedError("the NATS session is not open")
        return self._publisher

    async def declare_topic(
        self,
        topic: str,
        partitions: int,
        *,
        compacting: bool,
        retention: float | None,
        max_per_key: int = 1,
    ) -> TopicSpec:
        """Declare a topic bounded by the options: ``retention`` None is ``topic_retention`` for an
        ordinary topic and no age limit for a compacting one (its bound is ``changelog_max_bytes``)."""
        options = self.options
        if retention is None and not compacting:
            retention = options.topic_retention
        return await self.registry.declare(
            TopicSpec(
                name=topic,
                partitions=partitions,
                compacting=compacting,
                max_per_key=max_per_key,
                retention=retention,
                replicas=options.replicas,
                duplicate_window=options.duplicate_window,
                max_bytes=options.changelog_max_bytes if compacting else options.topic_max_bytes,
            )
        )
