"""Reading a partition's state changelog back into exactly-once state.

The writer (an agent's windowed table) flushes its state at every commit: first the records that
changed, each tagged with ``src`` — the source-partition offset the state reflects (the next event
to apply) — and then, once all of them are stored, one **marker** ``(src, flushed_at_us,
closed_us)``. The marker is the commit point of the state: a flush whose marker was never written
(the worker died half-way) does not count. The whole commit path around it, from results stored to
offsets committed, is one numbered list in ``agents.windowed.runtime.WindowedRuntime.flush``.

So, for every key, the valid value is its newest record with ``src <= marker.src``; records with a
larger ``src`` belong to an unfinished flush and are ignored, the previous value standing instead.
That is why the changelog keeps two records per key: the unfinished one and the one before it.
Reading resumes at ``marker.src`` in the source partition, and events replayed from there are
counted exactly once more.

A key whose newest record is invalid must be **repaired** by the next owner's first flush
(rewritten with its valid value): otherwise a later marker, with a larger ``src``, would make the
stale record look valid. Old owners cannot write any more by then — the transport fences them.

**Only what is open is kept.** A marker also says ``closed_us``, the *closed horizon*: every
window ending at or before it is closed as of that flush (its result stored, its deletion
written) and can never open again (an event for it would be late). The writer removes the
records of deleted windows from the changelog once a marker covers them (see
:mod:`tables.compaction`), so a reader may find a window's value without the deletion that
followed it — read just before the removal. The horizon settles that: at every marker a replica
**forgets** each key whose valid state is a deletion, or a value of a window ending at or before
the horizon, once every window value it saw under that key ends at or before the horizon too. A
deletion the horizon does not cover yet (a session merged into another, whose old key's window
may end later) is kept, value-less, until it does. So a replica — recovering, or a standby —
holds the open windows and few else, whatever the history.

Pure: values are whatever JSON-compatible objects the writer stored; nothing here does I/O.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

from tables.stored_windows import stored_end_us

__all__ = ["ChangelogReplica", "Deleted", "Marker", "Restored", "StateOwner"]

Value: TypeAlias = Mapping[str, Any] | None


class StateOwner(Protocol):
    """Per-partition state whose changelog, not the consumer's offsets, says where to resume.

    The consumer calls :meth:`flush` before every offset commit (state first, offsets after) and
    asks :meth:`resume_offset` where to start reading a source partition it is given.
    """

    async def flush(self) -> None:
        """Store everything changed (and everything it depends on) before offsets are committed."""
        ...

    def resume_offset(self, topic: str, partition: int) -> int | None:
        """The offset reading must resume at, or None when this owner has no say."""
        ...


@dataclass(frozen=True, slots=True)
class Marker:
    """A completed flush: the state reflects source offsets below ``src``, as of ``flushed_at_us``;
    every window ending at or before ``closed_us`` is closed (None: not said, an older writer)."""

    src: int
    flushed_at_us: int
    closed_us: int | None = None

    def to_json(self) -> bytes:
        data: dict[str, int] = {"src": self.src, "flushed_at_us": self.flushed_at_us}
        if self.closed_us is not None:
            data["closed_us"] = self.closed_us
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Marker:
        data = json.loads(raw)
        return cls(data["src"], data["flushed_at_us"], data.get("closed_us"))


@dataclass(frozen=True, slots=True)
class Deleted:
    """A key whose valid state is a deletion the closed horizon does not cover yet."""

    #: the latest end of the windows stored under the key; None when none was seen
    end_us: int | None
    #: changelog offset of the deletion (None when the reader was not told)
    offset: int | None


@dataclass(frozen=True)
class Restored:
    """What the changelog says the state was at its last completed flush."""

    #: storage key -> value, deletions left out, ready for ``PartitionWindows.load``
    items: list[tuple[str, Mapping[str, Any]]]
    #: the last completed flush; None if no flush ever completed (start from scratch)
    marker: Marker | None
    #: keys whose newest record is not valid: the next flush must rewrite them (value or None)
    repairs: dict[str, Value] = field(default_factory=dict)
    #: the latest window end seen under each key of ``items`` and ``repairs`` (windows only)
    ends: dict[str, int] = field(default_factory=dict)
    #: deleted keys the closed horizon does not cover yet (see tables.compaction)
    deleted: dict[str, Deleted] = field(default_factory=dict)


@dataclass(slots=True)
class _Record:
    value: Value
    src: int
    offset: int | None


@dataclass(slots=True)
class _Key:
    history: list[_Record]
    #: the latest end of the window values recorded under the key; None: no window value seen
    end_us: int | None = None


def _covered(end_us: int | None, closed_us: int | None) -> bool:
    return end_us is None or (closed_us is not None and end_us <= closed_us)


class ChangelogReplica:
    """A partition's changelog as read so far (recovery, or continuously as a standby)."""

    #: records kept per key: the newest, possibly unfinished, and the one before it
    HISTORY = 2

    def __init__(self) -> None:
        self._keys: dict[str, _Key] = {}
        self._marker: Marker | None = None
        #: keys whose newest record is a deletion not yet settled by a marker
        self._deletions: set[str] = set()
        #: (end_us, key) for every window end recorded: looked at once the horizon passes it
        self._by_end: list[tuple[int, str]] = []
        #: offset of the last changelog message applied (for resuming the changelog read)
        self.changelog_offset: int | None = None

    @property
    def marker(self) -> Marker | None:
        return self._marker

    def __len__(self) -> int:
        """How many keys the replica holds (open windows, the watermark, deletions not covered)."""
        return len(self._keys)

    def record(self, key: str, value: Value, src: int, *, changelog_offset: int | None = None) -> None:
        entry = self._keys.get(key)
        if entry is None:
            entry = self._keys[key] = _Key([])
        entry.history.append(_Record(value, src, changelog_offset))
        if len(entry.history) > self.HISTORY:
            del entry.history[0]
        if value is None:
            self._deletions.add(key)
        else:
            self._deletions.discard(key)
            end_us = stored_end_us(value)
            if end_us is not None and (entry.end_us is None or end_us > entry.end_us):
                entry.end_us = end_us
                heapq.heappush(self._by_end, (end_us, key))
        self._advance(changelog_offset)

    def mark(self, marker: Marker, *, changelog_offset: int | None = None) -> None:
        """A completed flush: it becomes the state's commit point if newer, and what it makes
        dead is forgotten (see the module docstring). The closed horizon only moves forward."""
        current = self._marker
        closed_us = max((m.closed_us for m in (current, marker) if m is not None and m.closed_us is not None),
                        default=None)
        newest = marker if current is None or marker.src >= current.src else current
        self._marker = Marker(newest.src, newest.flushed_at_us, closed_us)
        self._forget_dead()
        self._advance(changelog_offset)

    def _forget_dead(self) -> None:
        assert self._marker is not None
        limit, closed_us = self._marker.src, self._marker.closed_us
        for key in list(self._deletions):
            deleted = self._keys[key]
            newest = deleted.history[-1]
            if newest.src > limit:
                continue  # an unfinished deletion: the value before it may be the valid state
            self._deletions.discard(key)
            if _covered(deleted.end_us, closed_us):
                del self._keys[key]
            else:
                deleted.history = [newest]  # the deletion stands; the values before it are not needed
        if closed_us is None:
            return
        unfinished = []
        while self._by_end and self._by_end[0][0] <= closed_us:
            end_us, key = heapq.heappop(self._by_end)
            entry = self._keys.get(key)
            if entry is None or entry.end_us != end_us:
                continue  # forgotten already, or filed again under a later end
            if all(r.src <= limit for r in entry.history):
                # A closed window: its deletion was read, or removed before this replica read it.
                del self._keys[key]
                self._deletions.discard(key)
            else:
                # A record of an unfinished flush, which a closed window cannot have: kept, and
                # looked at again at the next marker rather than trusted either way.
                unfinished.append((end_us, key))
        for pending in unfinished:
            heapq.heappush(self._by_end, pending)

    def _advance(self, changelog_offset: int | None) -> None:
        if changelog_offset is not None:
            self.changelog_offset = max(changelog_offset, self.changelog_offset or 0)

    def restore(self) -> Restored:
        """The state as of the last completed flush, and the keys to repair."""
        marker = self._marker
        limit = marker.src if marker is not None else -1
        closed_us = marker.closed_us if marker is not None else None
        items: list[tuple[str, Mapping[str, Any]]] = []
        repairs: dict[str, Value] = {}
        ends: dict[str, int] = {}
        deleted: dict[str, Deleted] = {}
        for key, entry in self._keys.items():
            history = entry.history
            valid = next((r for r in reversed(history) if r.src <= limit), None)
            value = valid.value if valid is not None else None
            end_us = stored_end_us(value)
            if end_us is not None and closed_us is not None and end_us <= closed_us:
                value = None  # a closed window whose deletion this replica never read
            if history[-1] is not valid:
                repairs[key] = value
            elif value is None:
                deleted[key] = Deleted(entry.end_us, history[-1].offset)
                continue
            if value is not None:
                items.append((key, value))
            if entry.end_us is not None:
                ends[key] = entry.end_us
        return Restored(items=items, marker=marker, repairs=repairs, ends=ends, deleted=deleted)

    def forget(self) -> None:
        """Drop everything (the partition was given up entirely)."""
        self._keys.clear()
        self._deletions.clear()
        self._by_end.clear()
        self._marker = None
        self.changelog_offset = None
