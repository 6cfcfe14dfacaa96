"""In-memory table storage that remembers how far it has read each changelog partition.

faust's ``memory://`` store claims no persisted offsets, so a worker that already holds a standby
copy of a table partition replays that partition's whole changelog when it takes it over, and it
throws standby data away after every recovery. This store (``tracked-memory://``, registered in
the ``faust.stores`` entry point) records the offset of the last changelog record it applied or
wrote per partition and keeps the data of standby partitions, so a promoted standby — or an
active partition kept across a rebalance — resumes from where it was.

It lives beside the transport because it relies on the transport's changelog semantics: every
key's newest record survives compaction, so reading from a remembered offset to the highwater
brings a stale copy fully up to date.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from faust.stores.memory import Store as MemoryStore
from faust.types import TP, EventT

__all__ = ["TrackedMemoryStore"]


class TrackedMemoryStore(MemoryStore):
    def __post_init__(self) -> None:
        super().__post_init__()
        self._offsets: dict[TP, int] = {}

    def persisted_offset(self, tp: TP) -> int | None:
        return self._offsets.get(tp)

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        """Called by faust when this worker's own changelog write is acknowledged."""
        self._offsets[tp] = max(offset, self._offsets.get(tp, offset))

    def apply_changelog_batch(
        self,
        batch: Iterable[EventT],
        to_key: Callable[[Any], Any],
        to_value: Callable[[Any], Any],
    ) -> None:
        events = list(batch)
        super().apply_changelog_batch(events, to_key, to_value)
        for event in events:
            message = event.message
            self.set_persisted_offset(message.tp, message.offset)

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        """Keep active *and* standby partitions (faust's memory store keeps only actives)."""
        kept = {partition for _, partition in active_tps | standby_tps}
        for key in [k for k, p in self._key_partition.items() if p not in kept]:
            self.data.pop(key, None)
            self._key_partition.pop(key, None)
        for tp in [tp for tp in self._offsets if tp.partition not in kept]:
            del self._offsets[tp]
