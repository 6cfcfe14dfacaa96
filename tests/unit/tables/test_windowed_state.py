"""PartitionWindows change tracking (take_changes) and restore (load).

What take_changes returns is what goes to the changelog; load rebuilds the state from it. The
watermark is part of it only once a promise has counted: events never change it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tables.errors import StateError
from tables.metric import MetricDefinition
from tables.outcomes import ClosedWindow, FailedWindow, Late
from tables.windowed import PartitionWindows
from tables.windows import Hopping, Session, Tumbling, Window

from .clock import T0
from .windowed_helpers import T0_US, advance, answer, close_at, define, storage_key, summary


def test_take_changes_coalesces_each_key_once() -> None:
    windows = PartitionWindows(define(grace=10))
    for offset in (1, 2, 3):
        windows.add(answer("s1", T0 + offset, offset), T0 + offset)
    changes = windows.take_changes()
    # No promise yet: the windows changed, the watermark did not.
    assert set(changes) == {storage_key(0)}
    assert changes[storage_key(0)] == {
        "end_us": T0_US + 60_000_000,
        "events": 3,
        "state": {
            "n": 3,
            "total": 6,
            "low": 1,
            "high": 3,
            "avg": [6, 3],
            "last": [T0 + 3, 3],
            "questions": {"s:q1": 1},
        },
    }
    assert windows.take_changes() == {}
    json.dumps(changes, allow_nan=False)

    windows.add(answer("s1", T0 + 61), T0 + 4)
    windows.add(answer("s1", T0 + 200), T0 + 5)
    windows.add(answer("s1", T0 + 400), T0 + 6)
    closed = close_at(windows, T0 + 250)
    assert summary(closed) == [("s1", 0, 60, 3), ("s1", 60, 120, 1), ("s1", 180, 240, 1)]
    changes = windows.take_changes()
    # The stored window is deleted; the ones created and closed since the last call never reach
    # the changelog at all.
    assert changes == {
        storage_key(0): None,
        storage_key(360): changes[storage_key(360)],
        "answers.watermark": {"arrived_from_us": T0_US + 250_000_000},
    }


@pytest.mark.parametrize("window", [Tumbling(60), Session(30)], ids=["fixed", "session"])
def test_taking_everything_gives_the_whole_open_state_once(window: Window) -> None:
    windows = PartitionWindows(define(window=window))
    windows.add(answer("s1", T0 + 1), arrived_at=T0 + 1)
    windows.add(answer("s2", T0 + 2), arrived_at=T0 + 2)
    windows.take_changes()
    windows.add(answer("s1", T0 + 3), arrived_at=T0 + 3)
    assert set(windows.take_changes(everything=True)) == {storage_key(window_start(window, 1), "s1"), storage_key(window_start(window, 2), "s2")}
    advance(windows, T0 + 5)
    everything = windows.take_changes(everything=True)
    assert set(everything) == {storage_key(window_start(window, 1), "s1"), storage_key(window_start(window, 2), "s2"), "answers.watermark"}
    restored = PartitionWindows(define(window=window))
    restored.load(everything.items())
    assert restored.take_changes(everything=True) == everything
    assert windows.take_changes() == {}, "nothing is left pending after everything was taken"


def window_start(window: Window, at: float) -> float:
    return 0 if isinstance(window, Tumbling) else at


def test_the_watermark_is_a_change_only_when_a_promise_counts() -> None:
    windows = PartitionWindows(define())
    windows.promise(7, T0 + 5, next_offset=3)  # waits: records up to 7 are not processed yet
    assert windows.take_changes() == {}
    assert windows.processed(8) is True
    assert windows.take_changes() == {"answers.watermark": {"arrived_from_us": T0_US + 5_000_000}}
    # A promise that moves nothing is no change either.
    assert windows.promise(9, T0 + 4, next_offset=10) is False
    assert windows.take_changes() == {}


def test_promised_seconds_are_kept_to_the_microsecond() -> None:
    windows = PartitionWindows(define())
    assert windows.promise(1, T0 + 0.000001, next_offset=2) is True
    assert windows.watermark() == T0 + 0.000001
    assert windows.take_changes() == {"answers.watermark": {"arrived_from_us": T0_US + 1}}


def test_a_late_event_changes_nothing() -> None:
    windows = PartitionWindows(define(grace=5))
    windows.add(answer("s1", T0 + 10, 1), T0 + 11)
    windows.take_changes()
    assert isinstance(windows.add(answer("s1", T0 + 30, 100), T0 + 65), Late)
    assert windows.take_changes() == {}
    assert [w.values["total"] for w in close_at(windows, T0 + 65) if isinstance(w, ClosedWindow)] == [1]


# --- restore -------------------------------------------------------------------------------------


def replay(log: list[tuple[str, Any]], definition: MetricDefinition) -> PartitionWindows:
    windows = PartitionWindows(definition)
    windows.load(json.loads(json.dumps(log)))
    return windows


@pytest.mark.parametrize("window", [Tumbling(60), Hopping(60, 20), Session(30)], ids=repr)
def test_restore_continues_exactly_where_it_stopped(window: Window) -> None:
    # Events arrive a second after the newest event time so far, so some arrive out of order in
    # event time, all within the grace; after each one a reading promises the arrival of the one
    # before it (true: arrivals only grow here), which closes windows along the way.
    definition = define(window, grace=20)
    times = (1, 15, 50, 40, 70, 95, 200, 210, 190)
    arrivals = [T0 + max(times[: i + 1]) + 1 + i / 1000 for i in range(len(times))]
    records = [(answer("s1", T0 + t, t, f"q{t % 3}"), arrived) for t, arrived in zip(times, arrivals, strict=True)]

    def feed(restart_every: int | None) -> list[ClosedWindow | FailedWindow]:
        windows = PartitionWindows(definition)
        log: list[tuple[str, Any]] = []
        got: list[ClosedWindow | FailedWindow] = []
        for i, (event, arrived_at) in enumerate(records, start=1):
            windows.add(event, arrived_at)
            windows.promise(i - 1, arrived_at - 1, next_offset=i + 1)
            got += windows.close_due()
            if restart_every and i % restart_every == 0:
                log += windows.take_changes().items()
                windows = replay(log, definition)
        return got + close_at(windows, T0 + 10_000)

    expected = feed(restart_every=None)
    assert len(expected) > 1
    assert feed(restart_every=3) == feed(restart_every=1) == expected
    # Nothing was late or lost: every event is in the results (in each of its hopping windows).
    assert sum(w.events for w in expected) == len(times) * (3 if isinstance(window, Hopping) else 1)


def test_a_restored_watermark_resumes_and_pending_promises_are_read_again() -> None:
    windows = PartitionWindows(define(grace=5))
    windows.add(answer("s1", T0 + 10), T0 + 11)
    advance(windows, T0 + 30)
    windows.promise(5, T0 + 80, next_offset=2)  # pending: records 2..5 are still to process
    restored = replay(list(windows.take_changes().items()), definition=define(grace=5))
    assert restored.watermark() == T0 + 30
    # The pending promise was not stored: processing past its offset moves nothing ...
    assert restored.processed(6) is False
    assert restored.close_due() == []
    # ... until it is read again.
    assert restored.promise(5, T0 + 80, next_offset=6) is True
    assert summary(restored.close_due()) == [("s1", 0, 60, 1)]


def test_load_replays_in_order_later_pairs_win_and_none_deletes() -> None:
    definition = define(grace=1000)
    window_value = {"end_us": T0_US + 60_000_000, "events": 1, "state": definition.aggregates.initialize()}
    windows = PartitionWindows(definition)
    windows.load(
        [
            ("answers.watermark", {"arrived_from_us": T0_US}),
            (storage_key(0, "gone"), window_value),
            (storage_key(0, "kept"), {**window_value, "events": 1}),
            (storage_key(0, "gone"), None),
            (storage_key(0, "kept"), {**window_value, "events": 4}),
            ("answers.watermark", {"arrived_from_us": T0_US + 7_000_000}),
        ]
    )
    assert windows.take_changes() == {}
    assert windows.watermark() == T0 + 7
    assert [(w.key, w.events) for w in close_at(windows, T0 + 10_000)] == [({"student_id": "kept"}, 4)]


def test_load_migrates_a_watermark_stored_in_the_old_format() -> None:
    windows = PartitionWindows(define())
    windows.load([("answers.watermark", {"base_us": T0_US + 9_000_000, "wall_us": T0_US + 4_000_000})])
    assert windows.watermark() == T0 + 4
    # It is written back in the new format only when it moves again.
    assert windows.take_changes() == {}
    advance(windows, T0 + 5)
    assert windows.take_changes() == {"answers.watermark": {"arrived_from_us": T0_US + 5_000_000}}


def test_load_accepts_windows_stored_without_a_watermark() -> None:
    # Windows are written as events arrive, the watermark only once a promise counts: a worker
    # that stopped before any promise left windows and no watermark.
    source = PartitionWindows(define())
    source.add(answer("s1", T0 + 10), T0 + 11)
    log = list(source.take_changes().items())
    assert [key for key, _ in log] == [storage_key(0)]
    windows = replay(log, define())
    assert windows.watermark() is None
    assert windows.close_due() == []
    assert windows.next_due() == T0 + 60
    assert summary(close_at(windows, T0 + 60)) == [("s1", 0, 60, 1)]


def valid_log() -> list[tuple[str, Any]]:
    windows = PartitionWindows(define())
    windows.add(answer("s1", T0 + 1), T0 + 1)
    advance(windows, T0 + 1)
    return list(windows.take_changes().items())


@pytest.mark.parametrize(
    ("mutate", "key", "problem"),
    [
        (lambda log: [("other.window.0.s1", log[0][1]), log[1]], "other.window.0.s1", "not a storage key"),
        (
            lambda log: [(log[0][0], {**log[0][1], "end_us": T0_US + 1}), log[1]],
            storage_key(0),
            "does not fit",
        ),
        (
            lambda log: [(storage_key(1), {**log[0][1], "end_us": T0_US + 61_000_000}), log[1]],
            storage_key(1),
            "does not fit",
        ),
        (lambda log: [(log[0][0], {**log[0][1], "state": {"n": 1}}), log[1]], storage_key(0), "differ"),
        (lambda log: [(log[0][0], {**log[0][1], "events": 0}), log[1]], storage_key(0), "events an int >= 1"),
        (lambda log: [(log[0][0], {"end_us": 1}), log[1]], storage_key(0), "expected"),
        (lambda log: [(log[0][0], [1, 2]), log[1]], storage_key(0), "expected"),
        (lambda log: [log[0], (log[1][0], {"arrived_from_us": "x"})], "answers.watermark", "expected"),
        (lambda log: [log[0], (log[1][0], {"arrived_from_us": 1.5})], "answers.watermark", "expected"),
        (lambda log: [log[0], (log[1][0], {"base_us": "x", "wall_us": 1})], "answers.watermark", "expected"),
        (lambda log: [log[0], (log[1][0], [T0_US])], "answers.watermark", "expected a JSON object"),
    ],
)
def test_load_refuses_state_it_cannot_have_written_and_keeps_the_old_state(
    mutate: Any, key: str, problem: str
) -> None:
    log = valid_log()
    assert [k for k, _ in log] == [storage_key(0), "answers.watermark"]
    windows = PartitionWindows(define())
    windows.add(answer("s9", T0 + 2), T0 + 2)
    with pytest.raises(StateError) as caught:
        windows.load(mutate(log))
    assert caught.value.key == key
    assert problem in caught.value.problem
    assert windows.watermark() is None
    assert [w.key for w in close_at(windows, T0 + 100)] == [{"student_id": "s9"}]
