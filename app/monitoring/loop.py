"""A heartbeat on the event loop: how late it wakes up says whether the loop keeps up.

``/healthz`` answers from the loop it checks, so a loop blocked for good is seen by the probe's
own timeout; a loop that was blocked for a while and then answers is seen here: the heartbeat is
stale, and ``/healthz`` says so once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Final

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["LoopWatch"]

#: seconds between heartbeats
_BEAT: Final = 0.5


class LoopWatch(Collector):
    """Beats every half second on the running loop once started; a collector of its lag."""

    def __init__(self, *, stale_after: float = 10.0) -> None:
        self._stale_after = stale_after
        self._last = time.monotonic()
        self._lag = 0.0
        self._worst = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._last = time.monotonic()
            self._task = asyncio.get_running_loop().create_task(self._beat(), name="loop-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def responsive(self) -> bool:
        """The last heartbeat is recent: the loop has not been blocked for ``stale_after`` s
        (True before :meth:`start`: nothing is known against it)."""
        return self._task is None or time.monotonic() - self._last < self._stale_after

    @property
    def stale_for(self) -> float:
        """Seconds since the last heartbeat."""
        return time.monotonic() - self._last

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(_BEAT)
            now = time.monotonic()
            self._lag = max(0.0, now - self._last - _BEAT)
            self._worst = max(self._worst, self._lag)
            self._last = now

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "learning_streams_event_loop_lag_seconds", "how late the event loop's last heartbeat woke up",
            value=self._lag,
        )
        yield GaugeMetricFamily(
            "learning_streams_event_loop_lag_max_seconds", "the worst lateness of a heartbeat since start",
            value=self._worst,
        )
