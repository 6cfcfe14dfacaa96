"""The arrival clock of records handed straight to faust, with no broker to read it from.

A worker's windows close on promises read from the streams (``bridges/public/arrival_clock.py``):
"every record of partition ``p`` after offset ``L`` arrived at or after ``T``". The faust-core
stage feeds records to the Conductor itself, so it is the one that knows what is still to come,
and :class:`FedClock` promises exactly that:

- while records are fed: per partition, the offset of the last record fed and its arrival. True
  as long as arrivals never decrease within a partition (a backlog stored in arrival order),
  which :meth:`FedClock.fed` checks: a record that would make an earlier promise false is refused;
- after the last record (:meth:`FedClock.end`): a time past every window, since nothing more
  will ever come.

As in a worker, a promise counts only once the agent has processed past its offset, so windows
close as the backlog is worked off, and the last ones once everything has been processed.
"""

from __future__ import annotations

from collections.abc import Collection

from tables.watermark import Promise

__all__ = ["FedClock"]


class FedClock:
    """Promises about the records of ``topic`` fed so far; an ``agents.windowed.ArrivalClock``."""

    def __init__(self, topic: str) -> None:
        self._topic = topic
        self._last: dict[int, Promise] = {}
        self._end: float | None = None

    def fed(self, partition: int, offset: int, arrived_at: float) -> None:
        """Record ``offset`` of ``partition``, which arrived at ``arrived_at``, as handed to faust.

        Raises ValueError for an offset that does not follow the last one or an arrival earlier
        than the last one's (a promise already made would be false), RuntimeError after :meth:`end`.
        """
        if self._end is not None:
            raise RuntimeError(f"record {offset} of partition {partition} fed after the end")
        last = self._last.get(partition)
        if last is not None:
            if offset <= last.after_offset:
                raise ValueError(f"partition {partition}: offset {offset} fed after offset {last.after_offset}")
            if arrived_at < last.arrived_from:
                raise ValueError(
                    f"partition {partition}: offset {offset} arrived at {arrived_at}, before offset "
                    f"{last.after_offset} ({last.arrived_from}): the promise made then would be false"
                )
        self._last[partition] = Promise(offset, arrived_at)

    def end(self, after: float) -> None:
        """Nothing more will be fed; from now on promise ``after`` (pass a time past every window).

        Raises ValueError if ``after`` is earlier than an arrival already fed.
        """
        latest = max((promise.arrived_from for promise in self._last.values()), default=after)
        if after < latest:
            raise ValueError(f"the end {after} is before an arrival already fed ({latest})")
        self._end = after

    async def read(self, topic: str, partitions: Collection[int]) -> dict[int, Promise]:
        """A promise for each of ``partitions`` that has been fed (after :meth:`end`: for each)."""
        if topic != self._topic:
            return {}
        promises = {}
        for partition in partitions:
            last = self._last.get(partition)
            if self._end is not None:
                promises[partition] = Promise(0 if last is None else last.after_offset, self._end)
            elif last is not None:
                promises[partition] = last
        return promises
