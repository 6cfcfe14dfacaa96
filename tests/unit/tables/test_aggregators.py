"""Aggregators: the built-ins' results, JSON-compatible immutable states, merge, composition."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tables.aggregators import (
    Aggregates,
    Aggregator,
    Count,
    CountDistinct,
    Last,
    Max,
    Mean,
    MergeableAggregator,
    Min,
    Sum,
    is_mergeable,
)
from tables.errors import ConfigError, InvalidEventError


def run(aggregator: Aggregator[Any, Any], events: list[Any], start_ts: float = 0.0) -> Any:
    """Fold ``events`` (the i-th at ts start_ts + i) and return the state."""
    state = aggregator.initialize()
    for i, event in enumerate(events):
        state = aggregator.agg(state, event, start_ts + i)
    return state


def aggregator_id(aggregator: Aggregator[Any, Any]) -> str:
    """The aggregator's repr with each function by name alone: a function's repr holds its address,
    which differs between the processes of a parallel run (pytest-xdist), and they must collect
    the same test ids."""
    return re.sub(r"<function (\w+) at 0x[0-9a-f]+>", r"\1", repr(aggregator))


def is_correct(event: Any) -> bool:
    return bool(event.get("correct"))


SCORES = [{"s": 3}, {"s": 1.5}, {"s": None}, {}, {"s": 4}, {"s": -2}]

RESULTS = [
    # (aggregator, events, expected result)
    pytest.param(Count(), [], 0, id="count-empty"),
    pytest.param(Count(), SCORES, 6, id="count-all-events"),
    pytest.param(Count(where=is_correct), [{"correct": True}, {}, {"correct": True}], 2, id="count-where"),
    pytest.param(Sum("s"), [], 0, id="sum-empty"),
    pytest.param(Sum("s"), SCORES, 6.5, id="sum-skips-none-and-missing"),
    pytest.param(Sum("s"), [{"s": 1}, {"s": 2}], 3, id="sum-of-ints-is-int"),
    pytest.param(Sum("s", where=lambda e: (e.get("s") or 0) > 0), SCORES, 8.5, id="sum-where"),
    pytest.param(Sum(lambda e: e["a"] * e["b"]), [{"a": 2, "b": 3}, {"a": 1, "b": 1}], 7, id="sum-callable"),
    pytest.param(
        Sum("data.score"), [{"data": {"score": 2}}, {"data": {}}, {"data": {"score": 5}}], 7, id="sum-path"
    ),
    pytest.param(Min("s"), [], None, id="min-empty"),
    pytest.param(Min("s"), SCORES, -2, id="min"),
    pytest.param(Min("s"), [{"s": None}, {}], None, id="min-only-none"),
    pytest.param(Max("s"), [], None, id="max-empty"),
    pytest.param(Max("s"), SCORES, 4, id="max"),
    pytest.param(Mean("s"), [], None, id="mean-empty"),
    pytest.param(Mean("s"), SCORES, 6.5 / 4, id="mean-skips-none"),
    pytest.param(Mean("s", where=is_correct), [{"s": 10, "correct": True}, {"s": 0}], 10.0, id="mean-where"),
    pytest.param(Last("s"), [], None, id="last-empty"),
    pytest.param(Last("s"), SCORES, -2, id="last-by-ts"),
    pytest.param(Last("s"), [{"s": 1}, {"s": None}], 1, id="last-skips-none"),
    pytest.param(Last("tags"), [{"tags": ["a"]}, {"tags": {"b": 1}}], {"b": 1}, id="last-json-values"),
    pytest.param(CountDistinct("q"), [], 0, id="distinct-empty"),
    pytest.param(CountDistinct("q"), [{"q": "a"}, {"q": "b"}, {"q": "a"}, {"q": None}, {}], 2, id="distinct"),
    pytest.param(
        CountDistinct("q"), [{"q": 1}, {"q": 1.0}, {"q": True}], 1, id="distinct-1-equals-1.0-as-in-a-set"
    ),
    pytest.param(CountDistinct("q"), [{"q": 1}, {"q": "1"}], 2, id="distinct-string-is-not-number"),
    pytest.param(CountDistinct("q"), [{"q": 0.1}, {"q": 0.1}, {"q": 0.2}], 2, id="distinct-floats"),
]


@pytest.mark.parametrize(("aggregator", "events", "expected"), RESULTS)
def test_results(aggregator: Aggregator[Any, Any], events: list[Any], expected: Any) -> None:
    assert aggregator.result(run(aggregator, events)) == expected


def test_last_is_latest_by_event_time_not_by_arrival() -> None:
    last = Last("v")
    state = last.initialize()
    state = last.agg(state, {"v": "newest"}, 20.0)
    state = last.agg(state, {"v": "older, arrived later"}, 10.0)
    assert last.result(state) == "newest"
    state = last.agg(state, {"v": "tie, added later"}, 20.0)
    assert last.result(state) == "tie, added later"


BUILT_INS: list[Aggregator[Any, Any]] = [
    Count(),
    Count(where=is_correct),
    Sum("v"),
    Min("v"),
    Max("v"),
    Mean("v"),
    Last("v"),
    CountDistinct("v"),
    Aggregates({"n": Count(), "sum": Sum("v"), "distinct": CountDistinct("v")}),
]

# Events with integer values (so sums do not depend on float addition order), some without one.
EVENTS = st.lists(
    st.one_of(
        st.fixed_dictionaries({"v": st.integers(-1000, 1000), "correct": st.booleans()}),
        st.just({}),
        st.just({"v": None}),
    ),
    max_size=30,
)


@pytest.mark.parametrize("aggregator", BUILT_INS, ids=aggregator_id)
@given(events=EVENTS, split=st.integers(min_value=0, max_value=30))
def test_state_survives_a_json_round_trip_mid_stream(
    aggregator: Aggregator[Any, Any], events: list[Any], split: int
) -> None:
    straight = run(aggregator, events)
    state = json.loads(json.dumps(run(aggregator, events[:split]), allow_nan=False))
    for i, event in enumerate(events[split:], start=min(split, len(events))):
        state = aggregator.agg(state, event, float(i))
    assert aggregator.result(state) == aggregator.result(straight)
    assert state == straight


@pytest.mark.parametrize("aggregator", BUILT_INS, ids=aggregator_id)
@given(events=EVENTS)
def test_agg_never_mutates_the_state_it_is_given(aggregator: Aggregator[Any, Any], events: list[Any]) -> None:
    state = aggregator.initialize()
    for i, event in enumerate(events):
        before = copy.deepcopy(state)
        new_state = aggregator.agg(state, event, float(i))
        assert state == before
        state = new_state


@pytest.mark.parametrize("aggregator", BUILT_INS, ids=aggregator_id)
@given(events=EVENTS, split=st.integers(min_value=0, max_value=30))
def test_merge_of_two_parts_equals_aggregating_the_whole(
    aggregator: Aggregator[Any, Any], events: list[Any], split: int
) -> None:
    assert isinstance(aggregator, MergeableAggregator)
    split = min(split, len(events))
    first = run(aggregator, events[:split])
    second = run(aggregator, events[split:], start_ts=float(split))
    merged = aggregator.merge(first, second)
    assert aggregator.result(merged) == aggregator.result(run(aggregator, events))


@pytest.mark.parametrize(
    ("aggregator", "event", "field", "problem"),
    [
        (Sum("v"), {"v": "7"}, "v", "not a finite number"),
        (Sum("v"), {"v": True}, "v", "a bool; count true values with Count(where=...)"),
        (Min("v"), {"v": float("nan")}, "v", "not a finite number"),
        (Max("v"), {"v": float("inf")}, "v", "not a finite number"),
        (Mean("data.v"), {"data": {"v": [1]}}, "data.v", "not a finite number"),
        (Last("v"), {"v": {1, 2}}, "v", "not a JSON-compatible value"),
        (CountDistinct("v"), {"v": [1]}, "v", "not a string or a finite number"),
        (CountDistinct("v"), {"v": float("nan")}, "v", "not a finite number"),
    ],
)
def test_values_an_aggregator_cannot_take_are_invalid_events(
    aggregator: Aggregator[Any, Any], event: Any, field: str, problem: str
) -> None:
    with pytest.raises(InvalidEventError) as caught:
        aggregator.agg(aggregator.initialize(), event, 0.0)
    assert (caught.value.field, caught.value.problem) == (field, problem)


def test_number_subclasses_are_stored_as_plain_numbers() -> None:
    class Score(float):
        pass

    state = Sum("v").agg(0, {"v": Score(2.5)}, 0.0)
    assert type(state) is float
    assert state == 2.5


@pytest.mark.parametrize(
    ("factory", "field"),
    [
        (lambda: Sum(5), "field"),  # type: ignore[arg-type]
        (lambda: Mean("a..b"), "field"),
        (lambda: Min("v", where="yes"), "where"),  # type: ignore[arg-type]
        (lambda: Count(where=1), "where"),  # type: ignore[arg-type]
    ],
)
def test_bad_built_in_arguments(factory: Any, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        factory()
    assert caught.value.field == field


class Histogram:
    """A user-defined aggregator written like the built-ins: scores bucketed by tens."""

    def initialize(self) -> dict[str, int]:
        return {}

    def agg(self, state: dict[str, int], event: Any, ts: float) -> dict[str, int]:
        bucket = str(event["score"] // 10 * 10)
        return {**state, bucket: state.get(bucket, 0) + 1}

    def result(self, state: dict[str, int]) -> dict[str, int]:
        return dict(sorted(state.items()))


class MergeableHistogram(Histogram):
    def merge(self, a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
        return {k: a.get(k, 0) + b.get(k, 0) for k in {*a, *b}}


def completion(results: dict[str, Any]) -> dict[str, Any]:
    done = results["completed"] + results["failed"]
    return {"completion_rate": results["completed"] / done if done else None}


def test_aggregates_compose_named_results_and_finalize() -> None:
    aggregates = Aggregates(
        {
            "completed": Count(where=lambda e: e["status"] == "completed"),
            "failed": Count(where=lambda e: e["status"] == "failed"),
            "scores": Histogram(),
        },
        finalize=completion,
    )
    events = [
        {"status": "completed", "score": 91},
        {"status": "failed", "score": 12},
        {"status": "completed", "score": 95},
        {"status": "started", "score": 0},
    ]
    assert aggregates.names == ("completed", "failed", "scores")
    assert aggregates.result(run(aggregates, events)) == {
        "completed": 2,
        "failed": 1,
        "scores": {"0": 1, "10": 1, "90": 2},
        "completion_rate": 2 / 3,
    }
    assert aggregates.result(aggregates.initialize())["completion_rate"] is None


def test_finalize_may_replace_a_raw_value() -> None:
    aggregates = Aggregates({"n": Count()}, finalize=lambda r: {"n": r["n"] * 10})
    assert aggregates.result(run(aggregates, [{}, {}])) == {"n": 20}


def test_the_protocols_recognise_built_in_and_user_aggregators() -> None:
    assert isinstance(Count(), MergeableAggregator)
    assert isinstance(Histogram(), Aggregator)
    assert not isinstance(Histogram(), MergeableAggregator)
    assert isinstance(MergeableHistogram(), MergeableAggregator)
    assert not isinstance(object(), Aggregator)


def test_mergeability_of_aggregates_depends_on_every_part() -> None:
    plain = Aggregates({"n": Count(), "h": Histogram()})
    assert not plain.mergeable
    assert not is_mergeable(plain)
    assert plain.unmergeable() == ["h"]
    with pytest.raises(ConfigError) as caught:
        plain.merge(plain.initialize(), plain.initialize())
    assert caught.value.value == ["h"]
    nested = Aggregates({"inner": plain})
    assert not nested.mergeable
    mergeable = Aggregates(
        {"n": Count(), "h": MergeableHistogram(), "inner": Aggregates({"s": Sum("score")})}
    )
    assert mergeable.mergeable
    a = run(mergeable, [{"score": 15}])
    b = run(mergeable, [{"score": 17}, {"score": 3}])
    assert mergeable.result(mergeable.merge(a, b)) == {"n": 3, "h": {"0": 1, "10": 2}, "inner": {"s": 35}}


@pytest.mark.parametrize(
    ("factory", "field"),
    [
        (lambda: Aggregates({}), "aggregators"),
        (lambda: Aggregates([("n", Count())]), "aggregators"),  # type: ignore[arg-type]
        (lambda: Aggregates({"": Count()}), "aggregators"),
        (lambda: Aggregates({"n": len}), "n"),  # type: ignore[dict-item]
        (lambda: Aggregates({"n": Count()}, finalize="rate"), "finalize"),  # type: ignore[arg-type]
    ],
)
def test_bad_aggregates_are_config_errors(factory: Any, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        factory()
    assert caught.value.field == field
    assert str(caught.value).startswith(f"Aggregates '{field}'")


def test_reprs_show_the_definition() -> None:
    assert repr(Count()) == "Count()"
    assert repr(Sum("data.score")) == "Sum('data.score')"
    assert (
        repr(Aggregates({"n": Count(), "avg": Mean("s")})) == "Aggregates({'n': Count(), 'avg': Mean('s')})"
    )
