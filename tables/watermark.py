"""The watermark of one partition: the arrival time that everything still to come is at or after.

Time, here, is **arrival time**: the moment the platform first stored an event (its message in the
NATS ingest stream, or its write to the events topic), never the moment a worker got to it and never
the producer's ``occurred_at``. An event's ``occurred_at`` only says which window it belongs to; its
arrival says whether it came in time for that window (see :mod:`tables.windowed`). So:

- a worker that falls behind, stalls or replays its partition makes the same decisions as one that
  keeps up (every input to them is stored with the events);
- no event can move the watermark: a device clock running ahead places its events in their own
  (future) windows and delays nothing and no one else.

The watermark is advanced only by **promises** from whoever knows what is still to come (in this
project, a reading of the streams; see ``bridges``): "every record of this partition after offset
``L`` arrived at or after ``T``". A promise counts once the partition has been processed past
``L``; until then it waits in a bounded queue, so a worker working off a backlog sees time advance
in step with the records it has processed, and a caught-up worker sees it advance as the readings
come in, which is what closes the windows of an idle stream.

The value never decreases. It is stored with the state (``to_json``) so that a restarted worker
resumes from it; pending promises are not stored (they are about a live position and are read
again).

Times are int epoch microseconds (see :mod:`tables.micros`).
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from tables.errors import StateError

__all__ = ["Promise", "Watermark"]

#: Promises kept waiting at most; past it every other one is dropped. Dropping a promise only
#: delays closing (a later one covers the same ground), so the bound costs nothing but latency.
MAX_PENDING: Final = 1024


class Promise(NamedTuple):
    """A reading of a partition: every record after ``after_offset`` arrived at or after ``arrived_from``.

    ``arrived_from`` is in epoch seconds (the edge); :class:`Watermark` takes microseconds.
    """

    after_offset: int
    arrived_from: float


class Watermark:
    """The per-partition watermark; empty (``value_us`` is None) until the first promise counts."""

    __slots__ = ("_pending", "_value_us")

    def __init__(self) -> None:
        self._value_us: int | None = None
        #: (after_offset, arrived_from_us) in the order received; offsets never decrease
        self._pending: collections.deque[tuple[int, int]] = collections.deque()

    @property
    def value_us(self) -> int | None:
        """Every event still to come arrived at or after this; None before anything was promised."""
        return self._value_us

    @property
    def pending(self) -> int:
        """Promises waiting for the partition to be processed past their offset."""
        return len(self._pending)

    def promise(self, after_offset: int, arrived_from_us: int, *, next_offset: int | None) -> bool:
        """Take the promise "every record after ``after_offset`` arrived at or after ``arrived_from_us``".

        ``next_offset`` is the offset of the next record to process (None: nothing processed yet).
        Counts at once when every record up to ``after_offset`` has been processed, else waits for
        :meth:`processed`. Returns whether the value moved.
        """
        moved = self.processed(next_offset)  # what is due counts before anything is dropped
        pending = self._pending
        if pending and after_offset < pending[-1][0]:
            # Offsets of readings only grow; a smaller one comes from a stream that was recreated
            # or purged under us. Older promises may be wrong about it now: keep only this one.
            pending.clear()
        newest = pending[-1][1] if pending else self._value_us
        if newest is not None and arrived_from_us <= newest:
            return moved  # promises nothing new
        pending.append((after_offset, arrived_from_us))
        if len(pending) > MAX_PENDING:
            # Every other one, counted from the newest, which is always kept.
            self._pending = collections.deque(list(pending)[::-2][::-1])
        return self.processed(next_offset) or moved

    def processed(self, next_offset: int | None) -> bool:
        """The partition has been processed up to (not including) ``next_offset``; count what is due.

        Returns whether the value moved.
        """
        pending = self._pending
        moved = False
        while pending and (pending[0][0] == 0 or (next_offset is not None and pending[0][0] < next_offset)):
            moved = self.advance_us(pending.popleft()[1]) or moved
        return moved

    def advance_us(self, arrived_from_us: int) -> bool:
        """Raise the value to ``arrived_from_us`` (never lower it); returns whether it moved."""
        if self._value_us is None or arrived_from_us > self._value_us:
            self._value_us = arrived_from_us
            return True
        return False

    def to_json(self) -> dict[str, int]:
        """A JSON-compatible snapshot: ``{}`` when empty, else ``{"arrived_from_us": ...}``."""
        if self._value_us is None:
            return {}
        return {"arrived_from_us": self._value_us}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, key: str = "watermark") -> Watermark:
        """Rebuild from ``to_json()``; ``key`` names the stored item in a :class:`StateError`.

        Also reads the format of earlier versions, ``{"base_us", "wall_us"}`` (an event-time
        projection anchored at a wall time): the smaller of the two is taken, since the event
        time may have come from a clock running ahead and the wall time is when it was true.
        """
        watermark = cls()
        if not isinstance(data, Mapping):
            raise StateError(key, f"expected a JSON object, got {data!r}")
        if not data:
            return watermark
        if set(data) == {"arrived_from_us"} and type(data["arrived_from_us"]) is int:
            watermark._value_us = data["arrived_from_us"]
            return watermark
        base, wall = data.get("base_us"), data.get("wall_us")
        if set(data) == {"base_us", "wall_us"} and type(base) is int and type(wall) is int:
            watermark._value_us = min(base, wall)
            return watermark
        raise StateError(key, f'expected {{"arrived_from_us": int}}, got {dict(data)!r}')

    def __repr__(self) -> str:
        return f"Watermark({self.to_json()!r}, pending={len(self._pending)})"
