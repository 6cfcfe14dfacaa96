"""Steady background traffic into a topic, remembering where every message landed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

__all__ = ["Sent", "Traffic"]


@dataclass(frozen=True)
class Sent:
    partition: int
    offset: int
    key: str
    value: int


@dataclass
class Traffic:
    """Sends ``batch`` messages every ``interval`` seconds with values 1, 2, 3, ... over ``keys``."""

    send: Any
    topic: str
    keys: list[str]
    batch: int = 20
    interval: float = 0.05
    sent: list[Sent] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        value = 0
        while True:
            items = []
            for _ in range(self.batch):
                value += 1
                items.append((self.keys[value % len(self.keys)], value))
            metas = await self.send.many(self.topic, [(k.encode(), str(v).encode()) for k, v in items])
            self.sent.extend(Sent(m.partition, m.offset, k, v) for m, (k, v) in zip(metas, items, strict=True))
            await asyncio.sleep(self.interval)

    async def __aenter__(self) -> Traffic:
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
