"""Property tests: random event streams against the offline oracle.

- Shuffled within the grace period, nothing is late and every window (tumbling, hopping or
  session) reports exactly what the oracle computes from all events at once.
- With arbitrary delays, the events reported late are exactly those arriving after all their
  windows' end + grace, and the rest are counted exactly as the oracle says.
- Results never depend on when ``close_due`` runs, on commits, or on restarts from the changelog.

Wall-clock time follows the events: an event generated at ``t`` arrives at ``t + delay``
(plus a constant clock skew between producer and consumer, which must not matter).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tables.aggregators import Aggregates, Count, CountDistinct, Last, Max, Mean, Min, Sum
from tables.metric import MetricDefinition
from tables.micros import to_micros
from tables.windowed import ClosedWindow, Counted, Late, PartitionWindows
from tables.windows import Hopping, Session, Tumbling, Window

from .clock import T0
from .oracle import Arrival, Results, fixed_oracle, session_oracle

SKEW_MS = 1234  # the consumer's clock runs ahead of the producers'
FAR_FUTURE = T0 + 10**6

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


Raw = tuple[str, int, int, int, str]  # (student, event time ms, delay ms, score, question)


@st.composite
def raw_events(draw: st.DrawFn) -> list[Raw]:
    """Up to 40 events over 3 or 20 s for three students, delayed by up to 15 s."""
    span_ms = draw(st.sampled_from([3000, 20_000]))
    # Times on a 100 ms grid half of the time: window sizes, steps and gaps are multiples of
    # 100 ms, so events land exactly on window ends and exactly one gap apart often enough.
    times_ms = st.integers(0, span_ms) | st.integers(0, span_ms // 100).map(lambda n: n * 100)
    delays_ms = st.integers(0, 15_000) | st.integers(0, 150).map(lambda n: n * 100)
    students = st.sampled_from(["s1", "s2", "s3"])
    questions = st.sampled_from(["q1", "q2", "q3", "q4"])
    return draw(
        st.lists(
            st.tuples(students, times_ms, delays_ms, st.integers(-5, 100), questions), min_size=1, max_size=40
        )
    )


def arrivals(raw: list[Raw], max_delay_ms: int) -> list[Arrival]:
    """The events in arrival order, each delay capped at ``max_delay_ms``."""
    delayed = [(student, t, min(delay, max_delay_ms), score, q) for student, t, delay, score, q in raw]
    ordered = sorted(enumerate(delayed), key=lambda pair: (pair[1][1] + pair[1][2], pair[0]))
    return [Arrival(s, t, t + delay + SKEW_MS, score, q) for _, (s, t, delay, score, q) in ordered]


def define(shape: Shape, grace_ms: int) -> MetricDefinition:
    return MetricDefinition(
        name="answers",
        key_fields=("student_id",),
        time_field="ts",
        window=shape.window(),
        grace=grace_ms / 1000,
        aggregates=AGGREGATES,
    )


@dataclass
class Run:
    closed: list[ClosedWindow]
    late: set[int]
    counted: int  # events counted, once per window they went into

    def results(self) -> Results:
        results = {(w.key["student_id"], to_micros(w.start)): (w.events, w.values) for w in self.closed}
        assert len(results) == len(self.closed), "a window was reported twice"
        return results


def run(
    definition: MetricDefinition,
    stream: list[Arrival],
    *,
    close_every_step: bool = True,
    commits: frozenset[int] = frozenset(),
    restarts: frozenset[int] = frozenset(),
) -> Run:
    """Feed ``stream``; after step i commit (if i in commits) and restart from the log (if in restarts)."""
    windows = PartitionWindows(definition)
    log: list[tuple[str, Any]] = []
    closed: list[ClosedWindow] = []
    late: set[int] = set()
    counted = 0
    for i, arrival in enumerate(stream):
        outcome = windows.add(arrival.event, arrival.now)
        if isinstance(outcome, Late):
            late.add(i)
        else:
            assert isinstance(outcome, Counted)
            counted += outcome.windows
        if close_every_step:
            closed += windows.close_due(arrival.now)
        if i in commits or i in restarts:
            log += json.loads(json.dumps(list(windows.take_changes().items()), allow_nan=False))
        if i in restarts:
            windows = PartitionWindows(definition)
            windows.load(log)
    closed += windows.close_due(FAR_FUTURE)
    assert windows.next_close_at(FAR_FUTURE) is None
    return Run(closed, late, counted)


@settings(max_examples=300, deadline=None)
@given(raw=raw_events(), shape=ANY_SHAPE, grace_ms=st.integers(0, 3000))
# Boundaries that random streams rarely hit exactly: events exactly one gap apart (separate
# sessions), in either arrival order; an event bridging two sessions; an event at a window's end
# arriving before one inside the window.
@example(raw=[("s1", 500, 0, 1, "q1"), ("s1", 1000, 0, 2, "q1")], shape=Shape(gap_ms=500), grace_ms=1000)
@example(raw=[("s1", 1000, 0, 1, "q1"), ("s1", 500, 600, 2, "q1")], shape=Shape(gap_ms=500), grace_ms=1000)
@example(
    raw=[("s1", 500, 0, 1, "q1"), ("s1", 1000, 0, 2, "q1"), ("s1", 999, 900, 3, "q1")],
    shape=Shape(gap_ms=500),
    grace_ms=1000,
)
@example(raw=[("s1", 1000, 0, 1, "q1"), ("s1", 999, 1000, 2, "q1")], shape=Shape(1000, 1000), grace_ms=1000)
def test_shuffled_within_grace_nothing_is_late_and_results_match_the_oracle(
    raw: list[Raw], shape: Shape, grace_ms: int
) -> None:
    stream = arrivals(raw, max_delay_ms=grace_ms)
    result = run(define(shape, grace_ms), stream)
    assert result.late == set()
    if shape.gap_ms:
        expected = session_oracle(stream, shape.gap_ms)
    else:
        expected, expected_late = fixed_oracle(stream, shape.size_ms, shape.step_ms, grace_ms)
        assert expected_late == set()
    assert result.results() == expected


@settings(max_examples=300, deadline=None)
@given(
    raw=raw_events(),
    shape=FIXED,
    grace_ms=st.integers(0, 3000),
    commits=st.frozensets(st.integers(0, 39)),
    restarts=st.frozensets(st.integers(0, 39), max_size=3),
)
# The watermark reaches 1999 then 2000 = the end + grace of [0, 1000): the event at 998 arriving
# at 1999 still counts, the one at 999 arriving at 2000 is late.
@example(
    raw=[
        ("s1", 1500, 0, 1, "q1"),
        ("s1", 2000, 0, 2, "q1"),
        ("s1", 999, 1001, 3, "q1"),
        ("s1", 998, 1001, 4, "q1"),
    ],
    shape=Shape(1000, 1000),
    grace_ms=1000,
    commits=frozenset(),
    restarts=frozenset(),
)
def test_late_events_are_exactly_those_after_their_windows_end_plus_grace(
    raw: list[Raw], shape: Shape, grace_ms: int, commits: frozenset[int], restarts: frozenset[int]
) -> None:
    stream = arrivals(raw, max_delay_ms=15_000)
    expected, expected_late = fixed_oracle(stream, shape.size_ms, shape.step_ms, grace_ms)
    result = run(define(shape, grace_ms), stream, commits=commits, restarts=restarts)
    assert result.late == expected_late
    assert result.results() == expected
    assert result.counted == sum(events for events, _ in expected.values())


@settings(max_examples=300, deadline=None)
@given(
    raw=raw_events(),
    shape=ANY_SHAPE,
    grace_ms=st.integers(0, 3000),
    commits=st.frozensets(st.integers(0, 39)),
    restarts=st.frozensets(st.integers(0, 39), max_size=3),
)
def test_results_do_not_depend_on_when_windows_are_collected_or_on_restarts(
    raw: list[Raw], shape: Shape, grace_ms: int, commits: frozenset[int], restarts: frozenset[int]
) -> None:
    stream = arrivals(raw, max_delay_ms=15_000)
    definition = define(shape, grace_ms)
    lazy = run(definition, stream, close_every_step=False)
    eager = run(definition, stream, commits=commits, restarts=restarts)
    assert eager.late == lazy.late
    assert sorted(eager.results().items()) == sorted(lazy.results().items())
    # Every event that was not reported late is in the results: none vanishes.
    assert sum(w.events for w in lazy.closed) == lazy.counted
    if shape.gap_ms:
        assert lazy.counted == len(stream) - len(lazy.late)
