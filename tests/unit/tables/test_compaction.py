"""Compaction: what a changelog writer removes, and when (the protocol is Compaction.stored's).

A :class:`Log` plays the changelog partition: it numbers the records of each flush, then the
marker, as the stream would, and keeps what the purges leave, so a test can read the changelog
back with a fresh replica and compare it with the live state.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tables.changelog import ChangelogReplica, Deleted, Marker, Restored, Value
from tables.compaction import SLACK, Compaction, Flush, Purge, closed_horizon
from tables.windowed import PartitionWindows
from tables.windows import Session

from .clock import T0
from .windowed_helpers import T0_US, advance, answer, close_at, define, storage_key

MARKER = "answers.marker"


class Log:
    """A changelog partition and its purger: records by offset, each (key, value, src)."""

    def __init__(self, *, failing: bool = False) -> None:
        self.records: dict[int, tuple[str, Value, int]] = {}
        self.next = 1
        self.failing = failing
        self.purged: list[Purge] = []
        self.counts = 0

    async def purge_changelog(self, topic: str, partition: int, purges: Sequence[Purge]) -> list[Purge]:
        if self.failing:
            return list(purges)
        for purge in purges:
            self.purged.append(purge)
            for offset, (key, _, _) in list(self.records.items()):
                if offset < purge.below and (purge.key is None or key == purge.key):
                    del self.records[offset]
        return []

    async def changelog_records(self, topic: str, partition: int) -> int | None:
        self.counts += 1
        return len(self.records) + 1  # the fence

    async def flush(
        self, compaction: Compaction, windows: PartitionWindows, src: int, *, purger: bool = True
    ) -> Flush:
        """One flush as the runtime does it: take, write the records, the marker, then stored()."""
        flush = compaction.take({}, windows)
        offsets = [self.write(key, value, src) for key, value in flush.records.items()]
        marker = flush.marker(src, flushed_at_us=src)
        marker_offset = self.write(MARKER, {"src": marker.src, "closed_us": marker.closed_us}, src)
        await compaction.stored(flush, offsets, marker_offset, self if purger else None, "t", 0)
        return flush

    def write(self, key: str, value: Value, src: int) -> int:
        offset = self.next
        self.next += 1
        self.records[offset] = (key, value, src)
        # max_msgs_per_subject = 2, as the changelog streams keep
        mine = [o for o, (k, _, _) in self.records.items() if k == key]
        for old in mine[:-2]:
            del self.records[old]
        return offset

    def keys(self) -> set[str]:
        return {key for key, _, _ in self.records.values() if key != MARKER}

    def replay(self) -> ChangelogReplica:
        replica = ChangelogReplica()
        for offset, (key, value, src) in sorted(self.records.items()):
            if key == MARKER:
                assert value is not None
                replica.mark(Marker(value["src"], 0, value["closed_us"]), changelog_offset=offset)
            else:
                replica.record(key, value, src, changelog_offset=offset)
        return replica


def minute(n: int) -> float:
    return T0 + 60 * n


def test_no_horizon_before_a_watermark() -> None:
    assert closed_horizon(PartitionWindows(define(grace=5))) is None


@pytest.mark.parametrize(
    ("events", "watermark", "expected"),
    [
        pytest.param([], 130, 125, id="nothing-open:-the-watermark-less-the-grace"),
        pytest.param([30], 130, 60 - 1e-6, id="a-window-due-but-not-collected-is-still-open"),
        pytest.param([100], 90, 85, id="the-open-window-ends-later"),
    ],
)
def test_the_closed_horizon(events: list[float], watermark: float, expected: float) -> None:
    windows = PartitionWindows(define(grace=5))
    for at in events:
        windows.add(answer("s1", T0 + at), arrived_at=T0 + at)
    advance(windows, T0 + watermark)  # promised, not closed: close_due was not called
    assert closed_horizon(windows) == T0_US + round(expected * 1_000_000)


async def test_a_closed_window_leaves_the_changelog_after_the_marker_that_covers_it() -> None:
    log, windows = Log(), PartitionWindows(define())
    compaction = Compaction()
    for student in ("s1", "s2", "s3"):
        windows.add(answer(student, minute(0) + 1), arrived_at=minute(0) + 1)
    await log.flush(compaction, windows, src=3)
    assert log.keys() == {storage_key(0, s) for s in ("s1", "s2", "s3")}
    windows.add(answer("s1", minute(1) + 1), arrived_at=minute(1) + 1)
    close_at(windows, minute(1) + 2)
    flush = await log.flush(compaction, windows, src=4)
    assert not flush.rewrite
    assert [p.key for p in log.purged] == [storage_key(0, s) for s in ("s1", "s2", "s3")]
    assert log.keys() == {storage_key(60, "s1"), "answers.watermark"}
    restored = log.replay().restore()
    assert sorted(key for key, _ in restored.items) == ["answers.watermark", storage_key(60, "s1")]
    assert restored.repairs == {} and restored.deleted == {}


async def test_nothing_is_removed_before_the_marker_and_a_deletion_that_died_with_its_worker_is_repaired() -> None:
    log, windows = Log(), PartitionWindows(define())
    compaction = Compaction()
    windows.add(answer("s1", minute(0) + 1), arrived_at=minute(0) + 1)
    await log.flush(compaction, windows, src=3)
    close_at(windows, minute(1))
    flush = compaction.take({}, windows)
    for key, value in flush.records.items():
        log.write(key, value, 4)  # ... and the worker dies before the marker
    assert log.purged == []
    restored = log.replay().restore()
    assert restored.items == [(storage_key(0), restored.items[0][1])]
    assert set(restored.repairs) == {storage_key(0), "answers.watermark"}


async def test_a_merged_away_session_waits_for_the_horizon_before_it_is_purged() -> None:
    windows = PartitionWindows(define(window=Session(30)))
    log, compaction = Log(), Compaction()
    windows.add(answer("s1", T0 + 100), arrived_at=T0 + 100)
    await log.flush(compaction, windows, src=1)
    old_key = storage_key(100)
    windows.add(answer("s1", T0 + 80), arrived_at=T0 + 101)  # moves the session's start: old key deleted
    await log.flush(compaction, windows, src=2)
    assert log.purged == [], "the old session's window may end later than the horizon: kept"
    assert old_key in log.keys()
    close_at(windows, T0 + 131)  # session [80, 130) closes
    await log.flush(compaction, windows, src=3)
    assert {p.key for p in log.purged} == {old_key, storage_key(80)}
    assert log.keys() == {"answers.watermark"}


async def test_many_windows_closing_with_few_open_rewrite_the_partition_and_purge_once() -> None:
    log, windows = Log(), PartitionWindows(define())
    compaction = Compaction()
    students = [f"s{n}" for n in range(SLACK + 10)]
    for student in students:
        windows.add(answer(student, minute(0) + 1), arrived_at=minute(0) + 1)
    await log.flush(compaction, windows, src=1)
    windows.add(answer("s1", minute(1) + 1), arrived_at=minute(1) + 1)
    close_at(windows, minute(1) + 2)
    flush = await log.flush(compaction, windows, src=2)
    assert flush.rewrite
    assert set(flush.records) == {storage_key(60, "s1"), "answers.watermark"}, "no deletion is written"
    assert log.purged == [Purge(None, min(o for o, (k, _, src) in log.records.items() if src == 2))]
    assert log.keys() == {storage_key(60, "s1"), "answers.watermark"}
    assert [k for k, _ in sorted(log.replay().restore().items)] == ["answers.watermark", storage_key(60, "s1")]


async def test_a_new_owner_counts_the_changelog_once_and_rewrites_what_nobody_remembers() -> None:
    log, windows = Log(), PartitionWindows(define())
    first = Compaction()
    for n in range(40):
        windows.add(answer(f"s{n}", minute(n) + 1), arrived_at=minute(n) + 1)
        await log.flush(first, windows, src=n + 1, purger=False)  # a writer that never purged
        close_at(windows, minute(n) + 1)
    await log.flush(first, windows, src=41, purger=False)
    assert len(log.records) > 2 * 40
    replica = log.replay()
    assert len(replica) <= 3
    restored = replica.restore()
    successor = PartitionWindows(define())
    successor.load(restored.items)
    compaction = Compaction(restored)
    successor.add(answer("late-comer", minute(40) + 1), arrived_at=minute(40) + 1)
    await log.flush(compaction, successor, src=42)
    assert log.counts == 1
    flush = await log.flush(compaction, successor, src=42)
    assert flush.rewrite
    assert log.keys() == {storage_key(40 * 60, "late-comer"), "answers.watermark"} | {
        key for key, _ in restored.items
    }
    await log.flush(compaction, successor, src=43)
    assert log.counts == 1, "counted once per owner"


async def test_a_purge_that_failed_is_tried_again_after_the_next_flush() -> None:
    log, windows = Log(failing=True), PartitionWindows(define())
    compaction = Compaction()
    windows.add(answer("s1", minute(0) + 1), arrived_at=minute(0) + 1)
    windows.add(answer("s2", minute(1) + 1), arrived_at=minute(1) + 1)
    await log.flush(compaction, windows, src=1)
    close_at(windows, minute(1))
    await log.flush(compaction, windows, src=2)
    assert storage_key(0) in log.keys()
    log.failing = False
    windows.add(answer("s2", minute(1) + 2), arrived_at=minute(1) + 2)
    await log.flush(compaction, windows, src=3)
    assert storage_key(0) not in log.keys()


def test_a_restored_partition_knows_its_open_keys_deletions_and_horizon() -> None:
    restored = Restored(
        items=[("a", {"end_us": 100})],
        marker=Marker(5, 1, closed_us=50),
        repairs={"b": None},
        ends={"a": 100, "b": 90},
        deleted={"c": Deleted(end_us=70, offset=12)},
    )
    compaction = Compaction(restored)
    windows = PartitionWindows(define())
    flush = compaction.take(restored.repairs, windows)
    assert flush.closed_us == 50 and flush.records == {"b": None} and not flush.rewrite
