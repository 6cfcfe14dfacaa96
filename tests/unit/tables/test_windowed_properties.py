"""Property tests: replaying the same records gives the same windows and late events, always.

A scenario is a partition's records (events with their arrivals, offsets 1..n) and readings of the
stream delivered between them: promises "every record after offset L arrived at or after T", each
true of the records (T <= the arrival of every record after L), delivered at any position (before
the worker reached L: it waits; after: it counts at once). The worker closes windows at random
positions, commits (take_changes) at random positions and crashes at random positions: a crash
reloads the last commit and processes again from there, with the readings read again.

Whatever the run, the windows reported and the events reported late are those of the rule
(arrival_reference), and a window reported twice (again after a crash) has the same result.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tables.aggregators import Aggregates, Count, CountDistinct, Last, Max, Mean, Min, Sum
from tables.metric import MetricDefinition
from tables.micros import to_micros
from tables.outcomes import ClosedWindow, Counted, Late
from tables.windowed import PartitionWindows
from tables.windows import Hopping, Session, Tumbling, Window

from .arrival_reference import fixed_reference, session_reference
from .clock import T0
from .oracle import T0_US, Arrival, Results, session_oracle

AGGREGATES = Aggregates(
    {
        "n": Count(),
        "total": Sum("score"),
        "low": Min("score"),
        "high": Max("score"),
        "avg": Mean("score"),
        "last": Last("score"),
        "questions": CountDistinct("question"),
    }
)


@dataclass(frozen=True)
class Shape:
    """A window shape in milliseconds: fixed (size, step) or a session gap."""

    size_ms: int = 0
    step_ms: int = 0
    gap_ms: int = 0

    def window(self) -> Window:
        if self.gap_ms:
            return Session(self.gap_ms / 1000)
        if self.size_ms == self.step_ms:
            return Tumbling(self.size_ms / 1000)
        return Hopping(self.size_ms / 1000, self.step_ms / 1000)


TUMBLING = st.builds(lambda size: Shape(size, size), st.sampled_from([1000, 2500, 7000]))
HOPPING = st.builds(
    lambda size, step: Shape(size, min(step, size)),
    st.sampled_from([3000, 5000, 10_000]),
    st.sampled_from([1000, 1500, 2000, 3000]),
)
SESSION = st.builds(lambda gap: Shape(gap_ms=gap), st.sampled_from([500, 2000, 5000]))
FIXED = st.one_of(TUMBLING, HOPPING)
ANY_SHAPE = st.one_of(TUMBLING, HOPPING, SESSION)


@dataclass(frozen=True)
class Reading:
    """A promise delivered once ``position`` records are processed (next offset ``position + 1``)."""

    position: int
    after_offset: int
    arrived_from_ms: int


@dataclass(frozen=True)
class Scenario:
    shape: Shape
    grace_ms: int
    records: list[Arrival]
    readings: list[Reading] = field(default_factory=list)
    closes: frozenset[int] = frozenset()  # positions at which close_due runs (and always at the end)
    processed: frozenset[int] = frozenset()  # positions at which processed() is called
    commits: frozenset[int] = frozenset()
    crashes: frozenset[int] = frozenset()

    def definition(self) -> MetricDefinition:
        return MetricDefinition(
            name="answers",
            key_fields=("student_id",),
            time_field="ts",
            window=self.shape.window(),
            grace=self.grace_ms / 1000,
            aggregates=AGGREGATES,
        )

    def reference(self) -> tuple[Results, set[int]]:
        if self.shape.gap_ms:
            return session_reference(self.records, self.shape.gap_ms, self.grace_ms)
        return fixed_reference(self.records, self.shape.size_ms, self.shape.step_ms, self.grace_ms)


def true_bound_ms(records: list[Arrival], after_offset: int) -> int | None:
    """The earliest arrival of the records after ``after_offset``; None when there are none."""
    return min((r.now_ms for r in records[after_offset:]), default=None)


@st.composite
def scenarios(
    draw: st.DrawFn, shapes: st.SearchStrategy[Shape], *, in_order: bool, within_grace: bool = False
) -> Scenario:
    """Up to 30 events over 3 or 20 s for three students, and readings true of them.

    Arrivals are the event time plus a delay, which may be negative (a device clock running
    ahead); with ``in_order`` the records come in order of arrival, else half of the time in the
    order drawn. With ``within_grace`` every delay is from 0 to the grace.
    """
    shape = draw(shapes)
    grace_ms = draw(st.integers(0, 3000))
    span_ms = draw(st.sampled_from([3000, 20_000]))
    # Times on a 100 ms grid half of the time: window sizes, steps, gaps and many delays are
    # multiples of 100 ms, so arrivals land exactly on end + grace often enough.
    times_ms = st.integers(0, span_ms) | st.integers(0, span_ms // 100).map(lambda n: n * 100)
    low, high = (0, grace_ms) if within_grace else (-3000, 15_000)
    delays_ms = (
        st.integers(low, high)
        | st.integers(low // 100, high // 100).map(lambda n: n * 100)
        | st.integers(max(low, 0), min(high, grace_ms + 1000))  # around the grace: near the boundary
    )
    size = draw(st.integers(1, 30))  # drawn first: lists alone are mostly short
    raw = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["s1", "s2", "s3"]),
                times_ms,
                delays_ms,
                st.integers(-5, 100),
                st.sampled_from("abcd"),
            ),
            min_size=size,
            max_size=size,
        )
    )
    records = [Arrival(s, t, t + delay, score, q) for s, t, delay, score, q in raw]
    if in_order or draw(st.booleans()):
        records.sort(key=lambda r: r.now_ms)
    n = len(records)
    positions = st.integers(0, n)

    def some_positions() -> frozenset[int]:
        chosen = draw(st.lists(st.booleans(), min_size=n + 1, max_size=n + 1))
        return frozenset(p for p, yes in enumerate(chosen) if yes)

    # Readings: most about the records up to where the worker is (caught up), others about any
    # offset, behind or ahead of it (a backlog); each promises the true bound, or a bit less.
    readings = []
    count = draw(st.integers(0, 2 * n + 2))
    for position, after_offset, slack_ms in draw(
        st.lists(
            st.tuples(positions, st.none() | positions, st.just(0) | st.integers(0, 2000)),
            min_size=count,
            max_size=count,
        )
    ):
        after_offset = position if after_offset is None else after_offset
        bound_ms = true_bound_ms(records, after_offset)
        latest_ms = max(r.now_ms for r in records) + 5000 if bound_ms is None else bound_ms
        readings.append(Reading(position, after_offset, latest_ms - slack_ms))
    readings.sort(key=lambda r: r.position)  # delivered in the order the worker reaches them
    return Scenario(
        shape,
        grace_ms,
        records,
        readings,
        closes=some_positions(),
        processed=some_positions(),
        commits=some_positions(),
        crashes=draw(st.frozensets(st.integers(1, n), max_size=3)),
    )


@dataclass
class Run:
    windows: Results = field(default_factory=dict)
    late: set[int] = field(default_factory=set)
    counted: int = 0  # events counted, once per window they went into (first processing only)


def run(scenario: Scenario, *, crash: bool) -> Run:
    """Process ``scenario``; with ``crash``, crash where it says (each position once)."""
    definition = scenario.definition()
    records, n = scenario.records, len(scenario.records)
    readings: dict[int, list[Reading]] = defaultdict(list)
    for reading in scenario.readings:
        readings[reading.position].append(reading)
    crashes = set(scenario.crashes) if crash else set()
    result = Run()
    outcomes: dict[int, Counted | Late] = {}
    windows = PartitionWindows(definition)
    log: list[tuple[str, Any]] = []
    committed = position = 0
    previous_watermark: float | None = None

    def collect() -> None:
        for closed in windows.close_due():
            assert isinstance(closed, ClosedWindow), closed
            key = (closed.key["student_id"], to_micros(closed.start))
            reported = (closed.events, closed.values)
            assert result.windows.setdefault(key, reported) == reported, f"{key} reported with two results"

    while True:
        for reading in readings[position]:
            arrived_from = T0 + reading.arrived_from_ms / 1000
            windows.promise(reading.after_offset, arrived_from, next_offset=position + 1)
        watermark = windows.watermark()
        # Promises count only once the partition is past their offset: never past an arrival to come.
        bound_ms = true_bound_ms(records, position)
        assert watermark is None or bound_ms is None or to_micros(watermark) <= T0_US + bound_ms * 1000
        assert previous_watermark is None or (watermark is not None and watermark >= previous_watermark)
        previous_watermark = watermark
        if position in scenario.closes:
            collect()
        if position == n:
            break
        outcome = windows.add(records[position].event, records[position].now)
        assert isinstance(outcome, (Counted, Late))
        if isinstance(outcome, Late):
            assert "watermark had already passed" not in outcome.reason  # every promise was true
        # Judged again after a crash, a record gets the same outcome; only a Late's note of the
        # watermark at the time may differ (it is information, not part of the decision).
        judged = outcome if isinstance(outcome, Counted) else dataclasses.replace(outcome, watermark=None)
        assert outcomes.setdefault(position, judged) == judged, f"record {position} judged differently"
        position += 1
        if position in scenario.processed:
            windows.processed(position + 1)
        if position in scenario.commits:
            log += json.loads(json.dumps(list(windows.take_changes().items())))
            committed = position
        if position in crashes:
            crashes.discard(position)
            windows = PartitionWindows(definition)
            windows.load(log)
            position, previous_watermark = committed, windows.watermark()
    # A last reading, once everything is processed, promises beyond every window.
    windows.promise(n, T0 + 10**6, next_offset=n + 1)
    collect()
    assert windows.next_due() is None
    result.late = {i for i, outcome in outcomes.items() if isinstance(outcome, Late)}
    result.counted = sum(outcome.windows for outcome in outcomes.values() if isinstance(outcome, Counted))
    return result


def check_against_the_reference(scenario: Scenario) -> Run:
    expected, expected_late = scenario.reference()
    for crash in (False, True):
        result = run(scenario, crash=crash)
        assert result.late == expected_late
        assert result.windows == expected
        # Every event counted is in a reported window: none vanishes.
        assert result.counted == sum(events for events, _ in expected.values())
    return result


def scenario(shape: Shape, grace_ms: int, events: list[tuple[int, int]], **runs: Any) -> Scenario:
    """An explicit scenario for @example: student s1, (event time, arrival) in ms, score 1."""
    return Scenario(shape, grace_ms, [Arrival("s1", t, arrived, 1, "a") for t, arrived in events], **runs)


@settings(max_examples=250, deadline=None)
@given(sc=scenarios(FIXED, in_order=False))
# The window [0, 1000) closes to arrivals at 2000 (grace 1000): an arrival a millisecond before is
# in time, one exactly then is late, and a watermark promised at 1999 closes nothing yet.
@example(
    sc=scenario(
        Shape(1000, 1000),
        1000,
        [(1500, 1500), (999, 1999), (998, 2000), (500, 1999)],
        readings=[Reading(0, 0, 1500), Reading(1, 1, 1999), Reading(2, 2, 1999)],
        closes=frozenset({1, 2, 3}),
    )
)
# A device clock 299 s ahead: its event counts in its own window and holds no one else up.
@example(
    sc=scenario(
        Shape(1000, 1000),
        0,
        [(299_500, 10), (100, 200), (900, 999)],
        readings=[Reading(1, 1, 200), Reading(2, 2, 999)],
        closes=frozenset({2, 3}),
        commits=frozenset({2}),
        crashes=frozenset({3}),
    )
)
def test_fixed_windows_replayed_any_way_match_the_rule(sc: Scenario) -> None:
    check_against_the_reference(sc)


@settings(max_examples=250, deadline=None)
@given(sc=scenarios(SESSION, in_order=True))
# [500, 1000) closes to arrivals at 1000 (no grace): the event at 999 arriving then starts a
# session of its own, overlapping the first, which the event at 1200 then extends.
@example(
    sc=scenario(
        Shape(gap_ms=500),
        0,
        [(500, 500), (999, 1000), (1200, 1200)],
        readings=[Reading(2, 2, 1000)],
        closes=frozenset({3}),
    )
)
def test_sessions_replayed_any_way_match_the_rule(sc: Scenario) -> None:
    check_against_the_reference(sc)


@settings(max_examples=200, deadline=None)
@given(sc=scenarios(ANY_SHAPE, in_order=True, within_grace=True))
# Boundaries that random streams rarely hit exactly: events exactly one gap apart (separate
# sessions), in either arrival order; an event bridging two sessions.
@example(sc=scenario(Shape(gap_ms=500), 1000, [(500, 500), (1000, 1000)]))
@example(sc=scenario(Shape(gap_ms=500), 1000, [(1000, 1000), (500, 1100)]))
@example(sc=scenario(Shape(gap_ms=500), 1000, [(500, 500), (1000, 1000), (999, 1899)]))
@example(sc=scenario(Shape(1000, 1000), 1000, [(1000, 1000), (999, 1999)]))
def test_delayed_at_most_the_grace_nothing_is_late_and_sessions_split_at_gaps(sc: Scenario) -> None:
    # Every event arrived within the grace of its own time, hence before the end + grace of every
    # window (and session) it belongs to: nothing is late, and each session is just its key's
    # events split wherever two in time order are a gap or more apart.
    result = check_against_the_reference(sc)
    assert result.late == set()
    if sc.shape.gap_ms:
        assert result.windows == session_oracle(sc.records, sc.shape.gap_ms)
