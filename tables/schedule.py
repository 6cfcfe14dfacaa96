"""Open windows and the order in which they close.

:class:`OpenWindow` is the mutable record of one window (or session) of one key.
:class:`CloseSchedule` keeps open windows ordered by end, so that closing what is due and telling
when the next window closes cost ``O(log n)``, not a scan of every key's windows.

Windows are filed once, when they open. A session that grows later keeps its old, too-early entry
and one that is closed or merged away keeps an entry too: such stale entries are recognised and
re-filed or discarded when they reach the front. That keeps the per-event path free of heap work.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any

__all__ = ["CloseSchedule", "OpenWindow"]


class OpenWindow:
    """One open window (or session) of one key; owned and mutated by ``PartitionWindows``."""

    __slots__ = ("alive", "end_us", "events", "ids", "key", "start_us", "state", "stored")

    def __init__(
        self,
        key: tuple[str, ...],
        start_us: int,
        end_us: int,
        events: int,
        state: Any,
        *,
        stored: bool,
        ids: set[str] | None = None,
    ) -> None:
        self.key = key
        self.start_us = start_us
        self.end_us = end_us
        self.events = events
        self.state = state
        #: ids of the events counted (with an ``id_field``): a retried event counts once
        self.ids = ids
        #: Whether the changelog holds this window under its current storage key.
        self.stored = stored
        #: False once closed or merged away; its schedule entry is then stale.
        self.alive = True


class CloseSchedule:
    """Open windows by end (earliest first), tolerant of windows that grow or go away."""

    __slots__ = ("_heap", "_order")

    def __init__(self) -> None:
        # (end_us when filed, filing order, window): the order breaks ties, so windows are never
        # compared, and equal ends come out in filing order.
        self._heap: list[tuple[int, int, OpenWindow]] = []
        self._order = itertools.count()

    def add(self, window: OpenWindow) -> None:
        """File ``window`` under its current end."""
        heapq.heappush(self._heap, (window.end_us, next(self._order), window))

    def earliest(self) -> OpenWindow | None:
        """The alive window with the smallest end, left in place; None when there is none."""
        heap = self._heap
        while heap:
            end_us, _, window = heap[0]
            if window.alive and window.end_us == end_us:
                return window
            heapq.heappop(heap)
            if window.alive:
                self.add(window)
        return None

    def pop_until(self, limit_us: int) -> list[OpenWindow]:
        """Take out every alive window with end <= ``limit_us``, earliest first.

        The windows stay alive: the caller either drops them or, to undo, files them again.
        """
        due: list[OpenWindow] = []
        while (window := self.earliest()) is not None and window.end_us <= limit_us:
            heapq.heappop(self._heap)
            due.append(window)
        return due
