"""The faust-core stage's arrival clock: it promises what was fed, and after the end, everything.

Offsets are stream sequences (the first record of a partition is offset 1); times are epoch
seconds, as ``Promise.arrived_from`` is.
"""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.fed_clock import FedClock
from tables import Aggregates, ClosedWindow, Count, MetricDefinition, PartitionWindows, Tumbling
from tables.watermark import Promise

TOPIC = "events"

# Steps: ("fed", partition, offset, arrived_at) or ("end", after); then what read([0, 1]) gives.
READ_CASES = [
    pytest.param([], {}, id="nothing-fed-promises-nothing"),
    pytest.param(
        [("fed", 0, 1, 100.0)],
        {0: Promise(1, 100.0)},
        id="a-partition-fed-gets-its-last-offset-and-arrival-the-other-nothing",
    ),
    pytest.param(
        [("fed", 0, 1, 100.0), ("fed", 0, 2, 100.0), ("fed", 1, 1, 101.0), ("fed", 0, 3, 102.5)],
        {0: Promise(3, 102.5), 1: Promise(1, 101.0)},
        id="each-partition-its-own-last-record-equal-arrivals-allowed",
    ),
    pytest.param(
        [("fed", 0, 1, 100.0), ("fed", 0, 2, 105.0), ("end", 1000.0)],
        {0: Promise(2, 1000.0), 1: Promise(0, 1000.0)},
        id="after-the-end-every-partition-gets-the-end-from-its-last-offset",
    ),
    pytest.param([("end", 50.0)], {0: Promise(0, 50.0), 1: Promise(0, 50.0)}, id="end-with-nothing-fed"),
]


def apply(clock: FedClock, steps: list[tuple[Any, ...]]) -> None:
    for step in steps:
        if step[0] == "fed":
            clock.fed(*step[1:])
        else:
            clock.end(step[1])


@pytest.mark.parametrize(("steps", "promises"), READ_CASES)
async def test_what_the_clock_promises(steps: list[tuple[Any, ...]], promises: dict[int, Promise]) -> None:
    clock = FedClock(TOPIC)
    apply(clock, steps)
    assert await clock.read(TOPIC, [0, 1]) == promises


async def test_it_promises_only_for_the_partitions_asked_and_its_own_topic() -> None:
    clock = FedClock(TOPIC)
    apply(clock, [("fed", 0, 1, 100.0), ("fed", 1, 1, 100.0)])
    assert await clock.read(TOPIC, [1]) == {1: Promise(1, 100.0)}
    assert await clock.read("other", [0, 1]) == {}


REFUSED_CASES = [
    pytest.param([("fed", 0, 2, 100.0), ("fed", 0, 3, 99.0)], ValueError, id="an-earlier-arrival-would-break-a-promise"),
    pytest.param([("fed", 0, 2, 100.0), ("fed", 0, 2, 100.0)], ValueError, id="the-same-offset-again"),
    pytest.param([("fed", 0, 2, 100.0), ("fed", 0, 1, 100.0)], ValueError, id="an-offset-going-back"),
    pytest.param([("end", 100.0), ("fed", 0, 1, 100.0)], RuntimeError, id="a-record-after-the-end"),
    pytest.param([("fed", 0, 1, 100.0), ("end", 99.0)], ValueError, id="an-end-before-an-arrival-fed"),
]


@pytest.mark.parametrize(("steps", "error"), REFUSED_CASES)
def test_a_promise_that_would_be_false_is_refused(steps: list[tuple[Any, ...]], error: type[Exception]) -> None:
    clock = FedClock(TOPIC)
    apply(clock, steps[:-1])
    with pytest.raises(error):
        apply(clock, steps[-1:])


async def test_windows_close_as_records_are_processed_and_all_after_the_end() -> None:
    # One-minute windows, 5 s grace, records arriving 0.5 s after they occurred; the windows of a
    # partition driven by the clock's promises, as a worker's closer hands them over.
    definition = MetricDefinition(
        name="answers", key_fields=("student_id",), time_field="ts", window=Tumbling(60), grace=5,
        aggregates=Aggregates({"answers": Count()}),
    )
    windows = PartitionWindows(definition)
    clock = FedClock(TOPIC)
    times = ["2024-05-01T10:00:10Z", "2024-05-01T10:00:50Z", "2024-05-01T10:01:20Z", "2024-05-01T10:02:30Z"]
    base = 1714557600.0  # 10:00:00
    arrivals = [base + 10.5, base + 50.5, base + 80.5, base + 150.5]
    closed: list[list[str]] = []
    for offset, (ts, arrived) in enumerate(zip(times, arrivals, strict=True), start=1):
        clock.fed(0, offset, arrived)
        windows.add({"student_id": "s1", "ts": ts}, arrived)
        promise = (await clock.read(TOPIC, [0]))[0]
        windows.promise(promise.after_offset, promise.arrived_from, next_offset=offset + 1)
        closed.append([_start(w) for w in windows.close_due()])
    # 10:00 closes at 10:01:05, passed by the arrival of the record of 10:01:20; 10:01 at
    # 10:02:05, passed by the last one's; 10:02 only once nothing more is coming.
    assert closed == [[], [], ["10:00"], ["10:01"]]
    clock.end(arrivals[-1] + 60 + 5)
    promise = (await clock.read(TOPIC, [0]))[0]
    windows.promise(promise.after_offset, promise.arrived_from, next_offset=len(times) + 1)
    assert [_start(w) for w in windows.close_due()] == ["10:02"]


def _start(window: Any) -> str:
    assert isinstance(window, ClosedWindow)
    minutes = int(window.start - 1714557600.0) // 60
    return f"10:{minutes:02d}"
