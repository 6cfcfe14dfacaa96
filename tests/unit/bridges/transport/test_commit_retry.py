"""The consumer's declined commits, offered again until committed, and its pauses while the
store is full (faust's own acks are gone once it has computed an offset from them)."""

from __future__ import annotations

from bridges.storage import StorageState
from bridges.transport.commit_retry import FIRST_PAUSE, LONGEST_PAUSE, CommitRetry, cause
from tables.errors import BrokenError, FencedError, StorageFull


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def retry_with(clock: Clock | None = None) -> CommitRetry[str]:
    clock = clock or Clock()
    return CommitRetry(StorageState("worker t", "commits wait", clock=clock), clock)


FULL = StorageFull("$KV.faust_offsets.g.t.0", "server", "insufficient resources")


def test_declined_offsets_are_offered_until_committed_and_move_fausts_committed_offsets() -> None:
    retry = retry_with()
    committed: dict[str, int | None] = {"p0": 3, "p1": None}
    retry.declined({"p0": 10, "p1": 4}, committed, assigned={"p0", "p1"})
    assert committed == {"p0": 10, "p1": 4}  # the acks that follow start there, no gap

    offsets = {"p0": 12}  # faust found new acks on p0 only
    retry.offer(offsets, tps={"p0", "p1"}, assigned={"p0", "p1"})
    assert offsets == {"p0": 12, "p1": 4}
    nothing_new: dict[str, int] = {}
    retry.offer(nothing_new, tps={"p0", "p1"}, assigned={"p0", "p1"})
    assert nothing_new == {"p0": 10, "p1": 4}  # offered again without new acks

    retry.committed({"p0": 12})
    again: dict[str, int] = {}
    retry.offer(again, tps={"p0", "p1"}, assigned={"p0", "p1"})
    assert again == {"p1": 4}


def test_partitions_no_longer_assigned_or_reassigned_are_not_offered() -> None:
    retry = retry_with()
    retry.declined({"p0": 10, "gone": 5}, {}, assigned={"p0"})
    offsets: dict[str, int] = {}
    retry.offer(offsets, tps={"p0"}, assigned=set())
    assert offsets == {}
    retry.declined({"p0": 10, "p1": 7}, {}, assigned={"p0", "p1"})
    retry.forget({"p0"})  # taken anew; p1 was kept through the rebalance
    retry.offer(offsets, tps={"p0", "p1"}, assigned={"p0", "p1"})
    assert offsets == {"p1": 7}


def test_while_the_store_is_full_commits_pause_longer_each_time_and_resume_at_once_after() -> None:
    clock = Clock()
    retry = retry_with(clock)
    retry.refused(None, "state")  # declined for another reason: no pause
    assert not retry.waiting()
    pauses = []
    for _ in range(6):
        retry.refused(FULL, "offsets")
        start = clock.now
        while retry.waiting():
            clock.now += 0.25
        pauses.append(clock.now - start)
    assert pauses == [FIRST_PAUSE, 1.0, 2.0, 4.0, LONGEST_PAUSE, LONGEST_PAUSE]
    assert retry.storage.full
    retry.stored()
    assert not retry.storage.full and not retry.waiting()
    retry.refused(FULL, "state")
    clock.now += FIRST_PAUSE
    assert not retry.waiting()  # the pauses start over


def test_cause_finds_the_error_behind_faust_s_wrapper() -> None:
    try:
        try:
            raise FULL
        except StorageFull as exc:
            raise RuntimeError("send to t[0] failed") from exc
    except RuntimeError as wrapped:
        assert cause(wrapped, StorageFull) is FULL
        assert cause(wrapped, BrokenError) is FULL
        assert cause(wrapped, FencedError) is None
