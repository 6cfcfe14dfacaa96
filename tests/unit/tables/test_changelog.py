"""ChangelogReplica: what survives a flush that never completed, and what it forgets."""

from __future__ import annotations

import pytest

from tables.changelog import ChangelogReplica, Deleted, Marker


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


# -- only what is open is kept --------------------------------------------------------------------


def w(end_us: int, n: int = 1) -> dict[str, int]:
    """A window's stored value (only its end matters to the replica)."""
    return {"end_us": end_us, "events": n}


def test_a_closed_window_is_forgotten_at_the_marker_that_covers_its_deletion() -> None:
    replica = ChangelogReplica()
    replica.record("win", w(60), src=3)
    replica.mark(Marker(src=3, flushed_at_us=1, closed_us=0))
    replica.record("win", None, src=8)
    assert len(replica) == 1, "the deletion is unfinished until its marker: the value may be the state"
    replica.mark(Marker(src=8, flushed_at_us=2, closed_us=60))
    assert len(replica) == 0
    restored = replica.restore()
    assert (restored.items, restored.repairs, restored.deleted) == ([], {}, {})


def test_an_unfinished_deletion_is_kept_for_the_repair_even_when_the_horizon_passes() -> None:
    replica = ChangelogReplica()
    replica.record("win", w(60), src=3)
    replica.mark(Marker(src=3, flushed_at_us=1, closed_us=0))
    replica.record("win", None, src=8)  # the worker died before this deletion's marker
    restored = replica.restore()
    assert restored.items == [("win", w(60))]
    assert restored.repairs == {"win": w(60)}
    assert restored.ends == {"win": 60}


def test_a_value_whose_deletion_was_purged_before_it_was_read_goes_with_the_horizon() -> None:
    # A standby read the value, then the writer closed the window, wrote its marker and purged
    # both records: the standby never sees the deletion, only the next marker.
    replica = ChangelogReplica()
    replica.record("win", w(60), src=3)
    replica.record("open", w(120), src=3)
    replica.mark(Marker(src=3, flushed_at_us=1, closed_us=0))
    replica.mark(Marker(src=9, flushed_at_us=2, closed_us=60))
    assert len(replica) == 1
    assert replica.restore().items == [("open", w(120))]


def test_a_deletion_the_horizon_does_not_cover_waits_without_its_value() -> None:
    # A session merged into another: its old key is deleted while its window could still be open.
    replica = ChangelogReplica()
    replica.record("old-session", w(100), src=3)
    replica.record("old-session", None, src=5, changelog_offset=41)
    replica.mark(Marker(src=5, flushed_at_us=1, closed_us=50))
    assert len(replica) == 1
    restored = replica.restore()
    assert restored.items == [] and restored.repairs == {}
    assert restored.deleted == {"old-session": Deleted(end_us=100, offset=41)}
    replica.mark(Marker(src=6, flushed_at_us=2, closed_us=100))
    assert len(replica) == 0


def test_the_closed_horizon_never_moves_back() -> None:
    replica = ChangelogReplica()
    replica.mark(Marker(src=9, flushed_at_us=2, closed_us=500))
    replica.mark(Marker(src=5, flushed_at_us=1, closed_us=100))
    replica.mark(Marker(src=10, flushed_at_us=3))  # a writer that says nothing of it
    assert replica.marker == Marker(10, 3, closed_us=500)


def test_keys_that_are_not_windows_stay_until_deleted() -> None:
    replica = ChangelogReplica()
    replica.record("answers.watermark", {"arrived_from_us": 10**15}, src=3)
    replica.mark(Marker(src=3, flushed_at_us=1, closed_us=10**16))
    assert replica.restore().items == [("answers.watermark", {"arrived_from_us": 10**15})]


def test_a_standby_reading_windows_open_and_close_holds_only_the_open_ones() -> None:
    replica = ChangelogReplica()
    for minute in range(1, 5001):
        end = minute * 60
        src = minute * 10
        replica.record(f"win{minute}", w(end), src=src)  # opens
        replica.record(f"win{minute - 1}", None, src=src)  # the one before closes
        replica.mark(Marker(src=src, flushed_at_us=minute, closed_us=end - 60))
        assert len(replica) <= 2
    assert replica.restore().items == [("win5000", w(300_000))]


@pytest.mark.parametrize(
    ("marker", "raw"),
    [
        (Marker(5, 100, closed_us=60), b'{"src":5,"flushed_at_us":100,"closed_us":60}'),
        (Marker(5, 100), b'{"src":5,"flushed_at_us":100}'),
    ],
)
def test_a_marker_is_stored_as_json_and_read_back(marker: Marker, raw: bytes) -> None:
    assert marker.to_json() == raw
    assert Marker.from_json(raw) == marker


def test_a_marker_written_before_the_horizon_existed_is_read() -> None:
    assert Marker.from_json(b'{"src": 5, "flushed_at_us": 100}') == Marker(5, 100, None)
