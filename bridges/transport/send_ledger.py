"""Sends numbered as they begin, so a flush waits for those begun before it and no others.

faust flushes its producer before every offset commit, at the start of a recovery and when it
stops, to know that what it produced *so far* is stored. A flush that waited until nothing was
in flight would not end while the partitions a member keeps through a cooperative rebalance
flow on and produce (:mod:`bridges.transport.kept_flow`): each send during the flush extends
it. A flush here is a barrier instead: it waits for the sends begun before the call, acked or
failed, and for nothing begun after it.
"""

from __future__ import annotations

import asyncio

__all__ = ["SendLedger"]


class SendLedger:
    """The sends not settled yet, numbered as they begin; :meth:`flush` is the barrier."""

    def __init__(self) -> None:
        self._begun = 0
        #: the numbers of the sends not settled yet, oldest first (a dict keeps insertion order)
        self._unsettled: dict[int, None] = {}
        #: the flushes waiting: the number of the last send each waits for, and its waiter
        self._flushes: list[tuple[int, asyncio.Future[None]]] = []

    def __len__(self) -> int:
        return len(self._unsettled)

    def begin(self) -> int:
        """A send begins: its number (they increase), to :meth:`settle` it with."""
        self._begun += 1
        self._unsettled[self._begun] = None
        return self._begun

    def settle(self, number: int) -> None:
        """The send ``number`` is over: acknowledged, failed, or never sent. Idempotent."""
        self._unsettled.pop(number, None)
        if self._flushes:
            for flush in [flush for flush in self._flushes if self._settled_up_to(flush[0])]:
                self._flushes.remove(flush)
                if not flush[1].done():
                    flush[1].set_result(None)

    def mark(self) -> int:
        """The number of the last send begun so far: what a flush called now waits for."""
        return self._begun

    async def flush(self, mark: int | None = None) -> None:
        """Until every send begun up to ``mark`` (default: now, :meth:`mark`) is settled."""
        last = self._begun if mark is None else mark
        if self._settled_up_to(last):
            return
        flush = (last, asyncio.get_running_loop().create_future())
        self._flushes.append(flush)
        try:
            await flush[1]
        finally:
            if flush in self._flushes:
                self._flushes.remove(flush)

    def _settled_up_to(self, last: int) -> bool:
        oldest = next(iter(self._unsettled), None)
        return oldest is None or oldest > last
