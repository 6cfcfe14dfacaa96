"""Reading a partition's state changelog back into exactly-once state.

The writer (an agent's windowed table) flushes its state at every commit: first the records that
changed, each tagged with ``src`` — the source-partition offset the state reflects (the next event
to apply) — and then, once all of them are stored, one **marker** ``(src, flushed_at_us)``. The
marker is the commit point of the state: a flush whose marker was never written (the worker died
half-way) does not count. The whole commit path around it, from results stored to offsets
committed, is one numbered list in ``agents.windowed.runtime.WindowedRuntime.flush``.

So, for every key, the valid value is its newest record with ``src <= marker.src``; records with a
larger ``src`` belong to an unfinished flush and are ignored, the previous value standing instead.
That is why the changelog keeps two records per key: the unfinished one and the one before it.
Reading resumes at ``marker.src`` in the source partition, and events replayed from there are
counted exactly once more.

A key whose newest record is invalid must be **repaired** by the next owner's first flush
(rewritten with its valid value): otherwise a later marker, with a larger ``src``, would make the
stale record look valid. Old owners cannot write any more by then — the transport fences them.

Pure: values are whatever JSON-compatible objects the writer stored; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

__all__ = ["ChangelogReplica", "Marker", "Restored", "StateOwner"]

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
    """A completed flush: the state reflects source offsets below ``src``, as of ``flushed_at_us``."""

    src: int
    flushed_at_us: int


@dataclass(frozen=True)
class Restored:
    """What the changelog says the state was at its last completed flush."""

    #: storage key -> value, deletions left out, ready for ``PartitionWindows.load``
    items: list[tuple[str, Mapping[str, Any]]]
    #: the last completed flush; None if no flush ever completed (start from scratch)
    marker: Marker | None
    #: keys whose newest record is not valid: the next flush must rewrite them (value or None)
    repairs: dict[str, Value] = field(default_factory=dict)


@dataclass(slots=True)
class _Record:
    value: Value
    src: int


class ChangelogReplica:
    """A partition's changelog as read so far (recovery, or continuously as a standby)."""

    #: records kept per key: the newest, possibly unfinished, and the one before it
    HISTORY = 2

    def __init__(self) -> None:
        self._records: dict[str, list[_Record]] = {}
        self._marker: Marker | None = None
        #: offset of the last changelog message applied (for resuming the changelog read)
        self.changelog_offset: int | None = None

    @property
    def marker(self) -> Marker | None:
        return self._marker

    def record(self, key: str, value: Value, src: int, *, changelog_offset: int | None = None) -> None:
        history = self._records.setdefault(key, [])
        history.append(_Record(value, src))
        if len(history) > self.HISTORY:
            del history[0]
        self._advance(changelog_offset)

    def mark(self, marker: Marker, *, changelog_offset: int | None = None) -> None:
        if self._marker is None or marker.src >= self._marker.src:
            self._marker = marker
        self._advance(changelog_offset)

    def _advance(self, changelog_offset: int | None) -> None:
        if changelog_offset is not None:
            self.changelog_offset = max(changelog_offset, self.changelog_offset or 0)

    def restore(self) -> Restored:
        """The state as of the last completed flush, and the keys to repair."""
        limit = self._marker.src if self._marker is not None else -1
        items: list[tuple[str, Mapping[str, Any]]] = []
        repairs: dict[str, Value] = {}
        for key, history in self._records.items():
            valid = next((r for r in reversed(history) if r.src <= limit), None)
            value = valid.value if valid is not None else None
            if value is not None:
                items.append((key, value))
            if history[-1] is not valid:
                repairs[key] = value
        return Restored(items=items, marker=self._marker, repairs=repairs)

    def forget(self) -> None:
        """Drop everything (the partition was given up entirely)."""
        self._records.clear()
        self._marker = None
        self.changelog_offset = None
