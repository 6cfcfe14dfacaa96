"""What the caller of a fenced write holds: the write's outcome, and its next attempt on demand.

A write (:mod:`bridges.public.fenced_writes`) hands back a :class:`FencedWrite` at once. Its first
attempt's outcome is a future the writer settles from its acknowledgements (:func:`settle`),
without a task of its own: a worker writes a final value per window it closes, thousands a
second, and a task per write cost more than the write's own bookkeeping. An attempt that failed
is not lost: awaiting the write again starts the next one, as a task (failures are rare).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator
from typing import Any

__all__ = ["FencedWrite", "fail", "retrieve", "settle"]


class FencedWrite:
    """A write handed to its caller (step 5 of :mod:`bridges.public.fenced_writes`): awaiting it
    waits for the outcome of the attempt under way; awaiting it again once it has reported a
    failure starts the next attempt."""

    __slots__ = ("_again", "_attempt", "_failed", "_track")

    def __init__(
        self,
        first: asyncio.Future[None],
        again: Callable[[], Coroutine[Any, Any, None]],
        track: Callable[[asyncio.Future[None]], None],
    ) -> None:
        self._again = again
        self._track = track
        #: the attempt under way reported its failure to an awaiter
        self._failed = False
        #: the first attempt's outcome (set by the writer), or a later attempt's task
        self._attempt = first
        track(first)

    def _start_again(self) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._again())
        task.add_done_callback(retrieve)
        self._track(task)
        return task

    def __await__(self) -> Generator[Any, None, None]:
        return self._outcome().__await__()

    async def _outcome(self) -> None:
        if self._failed:
            self._failed = False
            self._attempt = self._start_again()
        attempt = self._attempt
        try:
            # Shielded: a caller that stops waiting (a flush cancelled on shutdown) does not cut
            # the write off half-way; the writer's close waits for it.
            await asyncio.shield(attempt)
        except asyncio.CancelledError:
            if attempt.cancelled():
                self._failed = attempt is self._attempt
            raise
        except BaseException:
            self._failed = attempt is self._attempt
            raise


def retrieve(task: asyncio.Task[None]) -> None:
    """Mark the outcome seen: a failed attempt is reported by whoever awaits the write."""
    if not task.cancelled():
        task.exception()


def settle(outcome: asyncio.Future[None], source: asyncio.Future[Any]) -> None:
    """Step 5: ``outcome`` ends as ``source`` ended (an acknowledgement, or an attempt's task)."""
    if outcome.done():
        return
    if source.cancelled():
        outcome.cancel()
        return
    error = source.exception()
    if error is None:
        outcome.set_result(None)
    else:
        fail(outcome, error)


def fail(outcome: asyncio.Future[None], error: BaseException) -> None:
    if not outcome.done():
        outcome.set_exception(error)
        outcome.exception()  # seen here: reported to whoever awaits the write, if anyone does
