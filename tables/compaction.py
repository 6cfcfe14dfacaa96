"""A windowed table's changelog holds what is open, not its history.

Every window the table ever opened leaves records in its changelog partition: its values, and the
deletion written when it closed. The writer of a partition removes them once nothing can need
them — the exactly-once protocol of :mod:`tables.changelog` included — so the changelog's size, a
recovery's reading and a standby's memory follow the windows open now. :class:`Compaction` keeps,
for one partition, what its writer needs for that; :meth:`Compaction.stored` has the protocol.

Two ways to remove records, both a JetStream purge of the partition's stream:

- **per key**: the records of one deleted key up to its deletion (a subject filter and a sequence
  bound), right after the marker that covers the deletion;
- **rewrite**: when more would go than stays, a flush writes the whole open state again (every
  open window, the watermark, the deletions not yet covered) and, after its marker, every record
  before it goes in one purge. This also removes what no writer remembers: records left by a
  worker killed between a marker and its purges, failed purges, changelogs written before this
  existed. A new owner checks for such leftovers once, by the stream's message count.

I/O goes through a :class:`ChangelogPurger` (implemented by the ``nats://`` transport); without
one, nothing is removed and the bookkeeping is all that runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Final, Protocol, runtime_checkable

from tables.changelog import Deleted, Marker, Restored, Value
from tables.micros import to_micros
from tables.stored_windows import stored_end_us
from tables.windowed import PartitionWindows

__all__ = ["ChangelogPurger", "Compaction", "Flush", "Purge", "closed_horizon"]

#: records to remove, beyond the number of open records, before rewriting is preferred
SLACK: Final = 16
#: messages a clean partition holds besides two per open key: two markers, two fences
_OVERHEAD: Final = 4


@dataclass(frozen=True, slots=True)
class Purge:
    """Remove the records of ``key`` stored below changelog offset ``below``; with ``key`` None,
    every record below it (the fence, which is not a record, stays)."""

    key: str | None
    below: int


@runtime_checkable
class ChangelogPurger(Protocol):
    """Removes records from a changelog partition (implemented in ``bridges``). Never raises."""

    async def purge_changelog(self, topic: str, partition: int, purges: Sequence[Purge]) -> list[Purge]:
        """Carry out ``purges``; returns those that failed (to try again later)."""
        ...

    async def changelog_records(self, topic: str, partition: int) -> int | None:
        """How many messages the partition's changelog holds; None when that cannot be read."""
        ...


def closed_horizon(windows: PartitionWindows) -> int | None:
    """A time (epoch µs) such that every window ending at or before it is closed and can never
    open again; None before the partition has a watermark.

    The watermark less the grace (an event for such a window is late, and the watermark only
    moves forward), and before the earliest window still open (one due but not collected yet is
    still open).
    """
    watermark = windows.watermark()
    if watermark is None:
        return None
    grace_us = windows.definition.grace_us
    horizon = to_micros(watermark) - grace_us
    due = windows.next_due()
    if due is not None:
        horizon = min(horizon, to_micros(due) - grace_us - 1)
    return horizon


@dataclass(frozen=True)
class Flush:
    """The records one flush writes, taken with the closed horizon at the same instant."""

    records: dict[str, Value]
    closed_us: int | None
    #: the whole open state, written so that everything before it can go
    rewrite: bool = False

    def marker(self, src: int, flushed_at_us: int) -> Marker:
        return Marker(src, flushed_at_us, self.closed_us)


def _later(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _covered(end_us: int | None, closed_us: int | None) -> bool:
    return end_us is None or (closed_us is not None and end_us <= closed_us)


class Compaction:
    """One changelog partition's removals, as its writer sees them (see the module docstring)."""

    def __init__(self, restored: Restored | None = None) -> None:
        #: keys stored with a value -> the latest window end stored under each (None: not a window)
        self._live: dict[str, int | None] = {}
        #: keys stored deleted whose records may not go yet (the horizon does not cover them)
        self._waiting: dict[str, Deleted] = {}
        self._closed_us: int | None = None
        self._failed: list[Purge] = []
        self._rewrite = False
        #: count the stream's messages once (leftovers from earlier writers)
        self._check = True
        if restored is not None:
            for key, _ in restored.items:
                self._live[key] = restored.ends.get(key)
            for key in restored.repairs:
                self._live.setdefault(key, restored.ends.get(key))  # a deletion to write
            self._waiting.update(restored.deleted)
            if restored.marker is not None:
                self._closed_us = restored.marker.closed_us

    @property
    def check_due(self) -> bool:
        """Whether the stream's messages are still to be counted (step 7 of :meth:`stored`) and
        can be: a flush with nothing to write is made all the same then, so that a partition taken
        over while idle does not keep an earlier writer's leftovers until its next event."""
        return self._check and self._closed_us is not None

    def take(self, repairs: Mapping[str, Value], windows: PartitionWindows) -> Flush:
        """The records of the next flush: ``repairs`` and ``windows``' changes; the whole open
        state instead when rewriting is cheaper than the purges it saves, or when it is due."""
        closed_us = _later(self._closed_us, closed_horizon(windows))
        records: dict[str, Value] = {**repairs, **windows.take_changes()}
        if not self._rewrite and not self._cheaper_to_rewrite(records, closed_us):
            return Flush(records, closed_us)
        records.update(windows.take_changes(everything=True))
        waiting = (key for key, deleted in self._waiting.items() if not _covered(deleted.end_us, closed_us))
        everything = chain(dict.fromkeys(waiting).items(), records.items())
        # A covered deletion is not written again: the marker's horizon says it (tables.changelog).
        kept = {k: v for k, v in everything if v is not None or not _covered(self._end(k), closed_us)}
        return Flush(kept, closed_us, rewrite=True)

    def _cheaper_to_rewrite(self, records: Mapping[str, Value], closed_us: int | None) -> bool:
        """Whether the purges due after ``records`` outnumber the open keys left (plus a slack)."""
        live = self._live
        removable = len(self._failed) + sum(1 for d in self._waiting.values() if _covered(d.end_us, closed_us))
        open_after = len(live)
        for key, value in records.items():
            if value is None:
                removable += _covered(self._end(key), closed_us)
                open_after -= key in live
            else:
                open_after += key not in live
        return removable > open_after + SLACK

    def _end(self, key: str) -> int | None:
        deleted = self._waiting.get(key)
        return _later(self._live.get(key), deleted.end_us if deleted is not None else None)

    async def stored(
        self,
        flush: Flush,
        offsets: Sequence[int],
        marker_offset: int,
        purger: ChangelogPurger | None,
        topic: str,
        partition: int,
    ) -> None:
        """``flush`` is stored, its records at ``offsets`` and then its marker at
        ``marker_offset``: remove what that makes unnecessary.

        The protocol, for one changelog partition (the flush itself is
        ``WindowedRuntime.flush``):

        1. A flush writes its records, then its marker, which carries the closed horizon taken
           with the records: every window ending at or before it is closed and deleted as of
           this flush, and can never open again.
        2. Nothing is removed before that marker is stored. A worker that dies between a
           deletion and its marker leaves the deletion unfinished; the next owner restores the
           value before it and repairs the key (tables.changelog), which needs both records.
        3. Then the records of each deleted key the horizon covers (every window value ever
           stored under the key ends at or before it) are purged, by key and only below its
           deletion's offset + 1: a record written later under the key (a new owner's repair or
           rewrite) is never touched, whoever purges and however late. A deletion the horizon
           does not cover yet (a session merged into another) waits: a reader that missed it
           would keep the old session, and nothing else would tell it otherwise.
        4. A rewrite flush (see :meth:`take`) holds every open key and every waiting deletion;
           after its marker, every record below its first one is purged at once. The fence,
           which is not a record, stays.
        5. A reader mid-read when a purge happens may miss a deletion and keep the value before
           it. The marker after it (never purged: markers come after what they cover, and a
           rewrite writes a new one) carries a horizon that covers that value, and the reader
           forgets it there (tables.changelog). Fresh readers, standbys and a new owner racing
           an old one's purges all end up with what the last marker says.
        6. Purges are not fenced. A fenced-off worker's late purges remove only records its own
           stored markers made dead, all below the new owner's fence and first writes.
        7. A purge that fails is tried again after the next flush; one lost with its worker (or
           left by a writer before this protocol) is found by the next owner, which counts the
           stream's messages once it has a horizon and rewrites when they are more than the open
           state explains.
        """
        self._closed_us = _later(self._closed_us, flush.closed_us)
        if flush.rewrite:
            purges = self._rewritten(flush, offsets, marker_offset)
        else:
            self._note(flush, offsets)
            purges = self._due()
        if purger is None:
            return
        if purges:
            self._failed = await purger.purge_changelog(topic, partition, purges)
        if self.check_due:
            records = await purger.changelog_records(topic, partition)
            if records is not None:
                self._check = False
                garbage = records - 2 * (len(self._live) + len(self._waiting)) - _OVERHEAD
                self._rewrite = garbage > len(self._live) + SLACK

    def _note(self, flush: Flush, offsets: Sequence[int]) -> None:
        for (key, value), offset in zip(flush.records.items(), offsets, strict=True):
            end_us = self._end(key)
            self._waiting.pop(key, None)
            if value is None:
                self._live.pop(key, None)
                self._waiting[key] = Deleted(end_us, offset)
            else:
                self._live[key] = _later(end_us, stored_end_us(value))

    def _due(self) -> list[Purge]:
        purges, self._failed = self._failed, []
        for key, deleted in list(self._waiting.items()):
            if _covered(deleted.end_us, self._closed_us):
                del self._waiting[key]
                if deleted.offset is not None:
                    purges.append(Purge(key, deleted.offset + 1))
                # else (restored without its offset): left for a rewrite, which the check finds
        return purges

    def _rewritten(self, flush: Flush, offsets: Sequence[int], marker_offset: int) -> list[Purge]:
        live: dict[str, int | None] = {}
        waiting: dict[str, Deleted] = {}
        for (key, value), offset in zip(flush.records.items(), offsets, strict=True):
            end_us = self._end(key)
            if value is None:
                waiting[key] = Deleted(end_us, offset)
            else:
                live[key] = _later(end_us, stored_end_us(value))
        self._live, self._waiting = live, waiting
        self._rewrite = self._check = False
        self._failed = []  # all below the rewrite
        return [Purge(None, min([*offsets, marker_offset]))]
