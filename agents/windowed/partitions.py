"""What the windowed runtime keeps per partition and per write in flight, and its wake-up call."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from tables import PartitionWindows
from tables.compaction import Compaction

__all__ = ["ActivePartition", "UnstoredWrite", "Wakeup"]


@dataclass(eq=False)
class UnstoredWrite:
    """A result or dead letter handed to the writer, not yet known to be stored."""

    partition: int
    write: Awaitable[None]
    #: a window's final result (else a dead letter): counted as written or refused
    final: bool = False
    #: awaited before and failed: awaiting it again starts its next attempt
    failed: bool = False


@dataclass
class ActivePartition:
    """A partition this worker processes: its windows and where they stand."""

    windows: PartitionWindows
    #: source offset the in-memory state reflects (the next event to apply); None: from the start
    applied: int | None
    #: source offset of the last completed flush
    flushed: int | None
    #: keys the next flush must (re)write: left to repair by recovery (see tables.changelog), or
    #: taken by a flush that did not complete
    repairs: dict[str, Any] = field(default_factory=dict)
    #: offset of this worker's last marker in the changelog
    changelog_offset: int | None = None
    #: what of the changelog may be removed, and when (tables.compaction)
    compaction: Compaction = field(default_factory=Compaction)


class Wakeup:
    """An event that can be waited on with a timeout, created on the running loop when needed."""

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    def set(self) -> None:
        if self._event is not None:
            self._event.set()

    async def wait(self, timeout: float) -> None:
        if self._event is None:
            self._event = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
        except TimeoutError:
            pass
        self._event.clear()
