"""The pauses between tries of a group duty that keeps failing, and its log lines.

A duty (joining, applying an assignment, computing one) can fail for a reason outside the
process: NATS away, or JetStream's store full, which lasts until an operator makes room. It is
tried again after a pause that doubles from half a second up to five, so a worker neither
spins nor gives up; the first failure of a run is logged as a warning, the rest at debug, and
the run's end once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final

__all__ = ["Retries"]

log = logging.getLogger(__name__)

#: the first pause of a failing duty, and the longest
FIRST_PAUSE: Final = 0.5
LONGEST_PAUSE: Final = 5.0


class Retries:
    """The tries of one duty: ``failed`` after each failure (it pauses), ``succeeded`` after a
    success (it logs the end of a run of failures)."""

    def __init__(self, what: str, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._what = what
        self._sleep = sleep
        self.failures = 0

    def pause(self) -> float:
        """Seconds the next :meth:`failed` pauses for."""
        return min(FIRST_PAUSE * 2 ** self.failures, LONGEST_PAUSE)

    async def failed(self, exc: BaseException) -> None:
        """Log the failure (a warning for the first of a run, debug after), then pause."""
        pause = self.pause()
        self.failures += 1
        reason = str(exc) or type(exc).__name__
        if self.failures == 1:
            log.warning("%s failed (%s); trying again", self._what, reason)
        else:
            log.debug("%s failed again (%d in a row): %s", self._what, self.failures, reason)
        await self._sleep(pause)

    def succeeded(self) -> None:
        if self.failures:
            log.warning("%s works again after %d failures", self._what, self.failures)
        self.failures = 0
