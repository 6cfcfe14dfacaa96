"""ChangelogReplica: what survives a flush that never completed."""

from __future__ import annotations

from tables.changelog import ChangelogReplica, Marker


def v(n: int) -> dict[str, int]:
    return {"n": n}


def test_without_a_completed_flush_nothing_is_restored_and_every_key_needs_repair() -> None:
    replica = ChangelogReplica()
    replica.record("a", v(1), src=5)
    restored = replica.restore()
    assert restored.items == []
    assert restored.marker is None
    assert restored.repairs == {"a": None}


def test_records_up_to_the_marker_are_the_state() -> None:
    replica = ChangelogReplica()
    replica.record("a", v(1), src=5)
    replica.record("b", v(2), src=5)
    replica.mark(Marker(src=5, flushed_at_us=100))
    restored = replica.restore()
    assert sorted(restored.items) == [("a", v(1)), ("b", v(2))]
    assert restored.marker == Marker(5, 100)
    assert restored.repairs == {}


def test_an_unfinished_flush_is_ignored_and_the_previous_value_stands() -> None:
    replica = ChangelogReplica()
    replica.record("a", v(1), src=5)
    replica.mark(Marker(src=5, flushed_at_us=100))
    replica.record("a", v(2), src=9)  # the worker died before writing the marker for src=9
    restored = replica.restore()
    assert restored.items == [("a", v(1))]
    assert restored.marker == Marker(5, 100)
    assert restored.repairs == {"a": v(1)}


def test_a_key_first_written_by_an_unfinished_flush_is_repaired_with_a_deletion() -> None:
    replica = ChangelogReplica()
    replica.mark(Marker(src=5, flushed_at_us=100))
    replica.record("new", v(1), src=9)
    assert replica.restore().items == []
    assert replica.restore().repairs == {"new": None}


def test_a_deletion_up_to_the_marker_removes_the_key() -> None:
    replica = ChangelogReplica()
    replica.record("a", v(1), src=3)
    replica.mark(Marker(src=3, flushed_at_us=1))
    replica.record("a", None, src=7)
    replica.mark(Marker(src=7, flushed_at_us=2))
    assert replica.restore().items == []
    assert replica.restore().repairs == {}


def test_an_unfinished_deletion_is_undone() -> None:
    replica = ChangelogReplica()
    replica.record("a", v(1), src=3)
    replica.mark(Marker(src=3, flushed_at_us=1))
    replica.record("a", None, src=7)
    assert replica.restore().items == [("a", v(1))]
    assert replica.restore().repairs == {"a": v(1)}


def test_only_two_records_per_key_are_kept_like_the_changelog_stream() -> None:
    replica = ChangelogReplica()
    for src, n in ((1, 1), (2, 2), (3, 3)):
        replica.record("a", v(n), src=src)
    replica.mark(Marker(src=1, flushed_at_us=1))
    # The record for src=1 was compacted away: the oldest kept is src=2, beyond the marker.
    assert replica.restore().items == []


def test_an_older_marker_read_later_does_not_move_the_state_back() -> None:
    replica = ChangelogReplica()
    replica.mark(Marker(src=9, flushed_at_us=2))
    replica.mark(Marker(src=5, flushed_at_us=1))
    assert replica.marker == Marker(9, 2)


def test_the_changelog_read_position_only_moves_forward_and_forget_resets_everything() -> None:
    replica = ChangelogReplica()
    replica.record("a", v(1), src=1, changelog_offset=10)
    replica.mark(Marker(src=1, flushed_at_us=1), changelog_offset=7)
    assert replica.changelog_offset == 10
    replica.forget()
    assert replica.changelog_offset is None
    assert replica.marker is None
    assert replica.restore().items == []
