"""Sending test input through faust's own producer on the ``nats://`` transport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import faust
from faust.types import RecordMetadata

__all__ = ["faust_producer"]


class _Sender:
    def __init__(self, app: faust.App) -> None:
        self.app = app

    async def __call__(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> RecordMetadata:
        return await self.app.producer.send_and_wait(topic, key, value, partition, timestamp, headers)

    async def many(self, topic: str, items: list[tuple[bytes | None, bytes]]) -> list[RecordMetadata]:
        futures = [await self.app.producer.send(topic, k, v, None, None, None) for k, v in items]
        return [await f for f in futures]


@asynccontextmanager
async def faust_producer(url: str, *, partitions: int = 4, **conf: Any) -> AsyncIterator[_Sender]:
    app = faust.App("test-producer", broker=url, web_enabled=False, topic_partitions=partitions, **conf)
    await app.producer.start()
    try:
        yield _Sender(app)
    finally:
        await app.producer.stop()
