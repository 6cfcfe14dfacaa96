"""The watermark: moved only by promises, each counting once its offset is processed; never lowered.

Times are int microseconds here (Watermark's unit); offsets are stream sequence numbers, so the
first record of a partition is offset 1 and "after offset 0" means every record.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tables import watermark as watermark_module
from tables.errors import StateError
from tables.watermark import MAX_PENDING, Promise, Watermark

# A step is ("promise", after_offset, arrived_from_us, next_offset) or ("processed", next_offset),
# paired with what must hold right after it: (returned "moved", value_us, promises pending).
Step = tuple[tuple[Any, ...], tuple[bool, int | None, int]]

PROMISE_CASES = [
    # -- promise offsets against processed offsets -----------------------------------------------
    pytest.param(
        [(("promise", 0, 100, None), (True, 100, 0))],
        id="after-offset-0-promises-every-record-so-counts-at-once",
    ),
    pytest.param(
        [(("promise", 0, 100, 1), (True, 100, 0))],
        id="after-offset-0-counts-at-once-with-nothing-processed-yet",
    ),
    pytest.param(
        [
            (("promise", 5, 100, None), (False, None, 1)),
            (("processed", 3), (False, None, 1)),
            (("processed", 5), (False, None, 1)),  # record 5 itself is not processed yet
            (("processed", 6), (True, 100, 0)),
        ],
        id="backlog-the-promise-waits-until-processed-past-its-offset",
    ),
    pytest.param(
        [(("promise", 5, 100, 6), (True, 100, 0))],
        id="caught-up-the-promise-counts-at-once",
    ),
    pytest.param(
        [(("promise", 5, 100, 5), (False, None, 1))],
        id="next-offset-equal-to-the-promised-offset-still-waits",
    ),
    pytest.param(
        [
            (("promise", 3, 100, 1), (False, None, 1)),
            (("promise", 6, 200, 1), (False, None, 2)),
            (("processed", 4), (True, 100, 1)),
            (("processed", 6), (False, 100, 1)),
            (("processed", 7), (True, 200, 0)),
        ],
        id="queued-promises-count-in-offset-order",
    ),
    pytest.param(
        [
            (("promise", 3, 100, 1), (False, None, 1)),
            (("promise", 6, 200, 1), (False, None, 2)),
            (("processed", 50), (True, 200, 0)),
        ],
        id="processing-past-several-counts-them-all-the-newest-wins",
    ),
    pytest.param(
        [
            (("promise", 3, 100, 1), (False, None, 1)),
            (("promise", 6, 200, 7), (True, 200, 0)),
        ],
        id="a-promise-given-the-position-counts-the-queue-too",
    ),
    # -- ordering and never decreasing -----------------------------------------------------------
    pytest.param(
        [(("promise", 0, 200, None), (True, 200, 0)), (("promise", 0, 100, None), (False, 200, 0))],
        id="an-earlier-time-never-lowers-it",
    ),
    pytest.param(
        [(("promise", 0, 200, None), (True, 200, 0)), (("promise", 0, 200, None), (False, 200, 0))],
        id="the-same-time-again-does-not-move-it",
    ),
    pytest.param(
        [
            (("promise", 3, 200, 1), (False, None, 1)),
            (("promise", 5, 150, 1), (False, None, 1)),  # implied by the one before: not queued
            (("processed", 6), (True, 200, 0)),
        ],
        id="a-later-offset-promising-less-is-dropped-as-implied",
    ),
    pytest.param(
        [
            (("promise", 0, 300, None), (True, 300, 0)),
            (("promise", 8, 250, 1), (False, 300, 0)),  # promises nothing new: not queued
        ],
        id="a-pending-promise-below-the-value-is-not-queued",
    ),
    pytest.param(
        [
            (("promise", 3, 100, 1), (False, None, 1)),
            (("promise", 3, 200, 1), (False, None, 2)),
            (("processed", 4), (True, 200, 0)),
        ],
        id="the-same-offset-with-a-later-time-is-queued-and-wins",
    ),
    # -- a smaller offset: the stream was recreated or purged -------------------------------------
    pytest.param(
        [
            (("promise", 10, 300, 1), (False, None, 1)),
            (("promise", 5, 200, 1), (False, None, 1)),
            (("processed", 11), (True, 200, 0)),  # 300 was about the old stream: gone
        ],
        id="a-smaller-offset-clears-the-queue-and-keeps-only-itself",
    ),
    pytest.param(
        [
            (("promise", 0, 100, None), (True, 100, 0)),
            (("promise", 10, 300, 1), (False, 100, 1)),
            (("promise", 5, 50, 1), (False, 100, 0)),
            (("processed", 11), (False, 100, 0)),
        ],
        id="a-smaller-offset-promising-nothing-new-still-clears-the-queue",
    ),
    pytest.param(
        [
            (("promise", 7, 300, 1), (False, None, 1)),
            (("promise", 0, 100, 1), (True, 100, 0)),
            (("processed", 8), (False, 100, 0)),
        ],
        id="an-offset-0-promise-after-a-queued-one-clears-it",
    ),
    pytest.param(
        [
            (("promise", 10, 300, 11), (True, 300, 0)),
            (("promise", 5, 200, 11), (False, 300, 0)),
        ],
        id="a-smaller-offset-never-lowers-what-already-counted",
    ),
]


@pytest.mark.parametrize("steps", PROMISE_CASES)
def test_promises_against_processed_offsets(steps: list[Step]) -> None:
    watermark = Watermark()
    for operation, (moved, value_us, pending) in steps:
        match operation:
            case ("promise", after_offset, arrived_from_us, next_offset):
                got = watermark.promise(after_offset, arrived_from_us, next_offset=next_offset)
            case ("processed", next_offset):
                got = watermark.processed(next_offset)
            case _:
                raise AssertionError(f"unknown step {operation!r}")
        assert (got, watermark.value_us, watermark.pending) == (moved, value_us, pending), operation


def test_empty_until_something_is_promised() -> None:
    watermark = Watermark()
    assert (watermark.value_us, watermark.pending, watermark.to_json()) == (None, 0, {})
    assert watermark.processed(1_000) is False
    assert watermark.value_us is None


def test_advance_us_raises_the_value_and_never_lowers_it() -> None:
    watermark = Watermark()
    assert watermark.advance_us(500) is True
    assert watermark.advance_us(400) is False
    assert watermark.advance_us(500) is False
    assert (watermark.advance_us(501), watermark.value_us) == (True, 501)


def test_a_promise_reads_as_offset_and_seconds() -> None:
    promise = Promise(after_offset=41, arrived_from=1_714_557_600.25)
    after_offset, arrived_from = promise
    assert (after_offset, arrived_from) == (41, 1_714_557_600.25)


# Offsets and positions only grow (no queue clearing) and there are far fewer than MAX_PENDING
# promises (no thinning): then the value is simply the largest time promised about an offset that
# has been processed past, and it never decreases.
Operation = tuple[bool, int, int]  # (is a promise, offset increment, time); a processed() call otherwise


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5), st.integers(0, 1_000)), min_size=1, max_size=60))
def test_value_is_the_largest_time_promised_about_processed_offsets(operations: list[Operation]) -> None:
    watermark = Watermark()
    offset = position = 0
    promised: list[tuple[int, int]] = []
    previous: int | None = None
    for is_promise, step, time_us in operations:
        if is_promise:
            offset += step
            promised.append((offset, time_us))
            moved = watermark.promise(offset, time_us, next_offset=position)
        else:
            position += step
            moved = watermark.processed(position)
        due = [t for after, t in promised if after == 0 or after < position]
        expected = max(due, default=None)
        assert watermark.value_us == expected
        assert moved == (expected != previous)
        assert previous is None or (expected is not None and expected >= previous)
        previous = expected


# -- the bounded queue --------------------------------------------------------------------------

# (bound, promises queued, checks): promise i (1-based) is about offset i and time 10 * i, all
# given before anything is processed; each check is (next_offset, the value it must then have).
THINNING_CASES = [
    pytest.param(4, 4, [(2, 10), (3, 20), (4, 30), (5, 40)], id="at-the-bound-nothing-is-dropped"),
    pytest.param(
        4, 5, [(2, 10), (3, 10), (4, 30), (5, 30), (6, 50)], id="one-over-keeps-every-other-from-the-newest"
    ),
    pytest.param(
        4, 7, [(2, 10), (5, 10), (6, 50), (7, 50), (8, 70)], id="thinned-twice-the-newest-is-always-kept"
    ),
]


@pytest.mark.parametrize(("bound", "queued", "checks"), THINNING_CASES)
def test_the_queue_is_bounded_by_thinning_and_offsets_are_still_respected(
    monkeypatch: pytest.MonkeyPatch, bound: int, queued: int, checks: list[tuple[int, int]]
) -> None:
    monkeypatch.setattr(watermark_module, "MAX_PENDING", bound)
    watermark = Watermark()
    for i in range(1, queued + 1):
        watermark.promise(i, 10 * i, next_offset=1)
        assert watermark.pending <= bound
    for next_offset, value_us in checks:
        watermark.processed(next_offset)
        assert watermark.value_us == value_us, f"processed up to {next_offset}"
        # Never a time promised about a record not yet processed (offset >= next_offset).
        assert value_us <= 10 * (next_offset - 1)


def test_the_real_bound_keeps_the_newest_and_respects_offsets() -> None:
    watermark = Watermark()
    count = 3 * MAX_PENDING + 7
    for i in range(1, count + 1):
        watermark.promise(i, 10 * i, next_offset=1)
        assert watermark.pending <= MAX_PENDING
    for next_offset in (2, MAX_PENDING, 2 * MAX_PENDING + 1, count):
        watermark.processed(next_offset)
        assert watermark.value_us is not None and watermark.value_us <= 10 * (next_offset - 1)
    watermark.processed(count + 1)
    # The newest promise survived every thinning: caught up, nothing is left waiting.
    assert (watermark.value_us, watermark.pending) == (10 * count, 0)


# -- restart ------------------------------------------------------------------------------------


def test_json_snapshot_round_trip_resumes_the_value() -> None:
    watermark = Watermark()
    watermark.promise(0, 1_714_557_600_250_000, next_offset=None)
    snapshot = json.loads(json.dumps(watermark.to_json()))
    assert snapshot == {"arrived_from_us": 1_714_557_600_250_000}
    restored = Watermark.from_json(snapshot)
    assert (restored.value_us, restored.pending) == (1_714_557_600_250_000, 0)
    assert repr(restored) == "Watermark({'arrived_from_us': 1714557600250000}, pending=0)"
    # It resumes, not restarts: an older promise still cannot lower it.
    assert restored.promise(0, 1_000, next_offset=None) is False


def test_pending_promises_are_not_stored() -> None:
    # A promise about a position not yet reached is read again after a restart; storing it
    # would count it against whatever position the restarted worker resumes from.
    watermark = Watermark()
    watermark.promise(0, 100, next_offset=None)
    watermark.promise(9, 500, next_offset=1)
    assert watermark.to_json() == {"arrived_from_us": 100}
    restored = Watermark.from_json(watermark.to_json())
    assert (restored.value_us, restored.pending) == (100, 0)
    assert restored.processed(10) is False
    assert Watermark.from_json({}).value_us is None


@pytest.mark.parametrize(
    ("stored", "value_us"),
    [
        pytest.param({"base_us": 1_000, "wall_us": 900}, 900, id="event-time-ahead-of-wall-takes-wall"),
        pytest.param({"base_us": 900, "wall_us": 1_000}, 900, id="event-time-behind-wall-takes-event-time"),
        pytest.param({"base_us": 700, "wall_us": 700}, 700, id="equal"),
        pytest.param({"base_us": -5, "wall_us": 10}, -5, id="negative-is-still-an-int"),
    ],
)
def test_the_old_format_migrates_to_the_smaller_of_its_two_times(
    stored: dict[str, int], value_us: int
) -> None:
    # The old value projected an event time (maybe from a clock running ahead) from a wall time;
    # the smaller of the two is a time every arrival still to come is after.
    restored = Watermark.from_json(stored)
    assert restored.value_us == value_us
    assert restored.to_json() == {"arrived_from_us": value_us}


@pytest.mark.parametrize(
    "stored",
    [
        [],
        "1000",
        None,
        {"arrived_from_us": 1.5},
        {"arrived_from_us": True},
        {"arrived_from_us": "1000"},
        {"arrived_from_us": None},
        {"arrived_from_us": 1, "extra": 2},
        {"base_us": 1},
        {"wall_us": 1},
        {"base_us": 1, "wall_us": "2"},
        {"base_us": 1.0, "wall_us": 2},
        {"base_us": True, "wall_us": 2},
        {"base_us": 1, "wall_us": 2, "extra": 3},
        {"base_us": 1, "wall_us": 2, "arrived_from_us": 3},
    ],
    ids=repr,
)
def test_from_json_refuses_what_no_version_wrote_naming_the_key(stored: Any) -> None:
    with pytest.raises(StateError) as caught:
        Watermark.from_json(stored, key="m.watermark")
    assert caught.value.key == "m.watermark"
    assert "expected" in caught.value.problem


def test_a_smaller_offset_keeps_what_was_already_due_before_clearing_the_queue() -> None:
    # Promised about offset 5 before it was processed; by the next reading (about offset 2: the
    # stream was recreated) records up to 10 were processed, so the first promise already holds.
    watermark = Watermark()
    watermark.promise(5, 100, next_offset=1)
    assert watermark.value_us is None
    watermark.promise(2, 50, next_offset=11)
    assert watermark.value_us == 100 and watermark.pending == 0
