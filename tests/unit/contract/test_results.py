"""The result models against the contract's values (as the oracle writes them): the generic one
for any metric, the typed refinements of the built-ins, and readers that tolerate additions."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from contract.results import InvalidResult, MetricResult, parse_result
from contract.typed.engagement import EngagementResult
from contract.typed.outcomes import OutcomesResult
from contract.typed.progression import ProgressionResult
from tables.errors import StreamsError
from testkit.oracle import expected_results, generate_sessions

T0 = 1_714_557_600
RESULTS = expected_results(generate_sessions(seed=3, students=8, minutes=6, start_epoch=T0))
MODELS = {"progression": ProgressionResult, "engagement": EngagementResult, "outcomes": OutcomesResult}


def sample(metric: str) -> dict[str, Any]:
    return next(value for value in RESULTS.values() if value["metric"] == metric)


def test_the_oracle_covers_every_refinement() -> None:
    assert {value["metric"] for value in RESULTS.values()} == set(MODELS)


@pytest.mark.parametrize("key", sorted(RESULTS))
def test_every_oracle_value_parses_and_writes_back_unchanged(key: str) -> None:
    value = RESULTS[key]
    result = parse_result(json.dumps(value).encode())
    assert type(result) is MODELS[value["metric"]]
    assert result.kv_key == key
    assert result.subject == f"results.{value['metric']}.{value['key']['student_id']}"
    # Equal as JSON, int and float kept apart (150 is not 150.0).
    written = json.loads(result.to_json_bytes())
    assert written == value
    assert json.dumps(written, sort_keys=True) == json.dumps(value, sort_keys=True)


def test_typed_access() -> None:
    result = parse_result(json.dumps(sample("outcomes")))
    assert isinstance(result, OutcomesResult)
    assert result.window.start.tzinfo is not None
    assert result.window_start == int(result.window.start.timestamp())
    assert result.student_id == result.key["student_id"]
    assert result.game_id == result.key["game_id"]
    assert result.values.games >= 1


def test_window_bounds_are_written_with_z() -> None:
    value = sample("engagement")
    result = parse_result(json.dumps(value))
    assert result.window.start == datetime.fromisoformat(value["window"]["start"].replace("Z", "+00:00"))
    assert result.window.start.astimezone(UTC) == result.window.start
    assert json.loads(result.to_json_bytes())["window"] == value["window"]


def broken(metric: str, path: str, new: Any) -> bytes:
    value = json.loads(json.dumps(sample(metric)))
    *parents, last = path.split(".")
    target = value
    for part in parents:
        target = target[part]
    if new is KeyError:
        del target[last]
    else:
        target[last] = new
    return json.dumps(value).encode()


def test_a_result_with_an_unknown_field_and_an_unknown_value_parses() -> None:
    value = sample("engagement")
    value = {**value, "source": "v2-worker", "values": {**value["values"], "streak": 4}}
    result = parse_result(json.dumps(value))
    assert isinstance(result, EngagementResult)
    assert result.values.accuracy == value["values"]["accuracy"]
    assert result.values.model_extra == {"streak": 4}  # kept, not refused
    assert json.loads(result.to_json_bytes())["values"]["streak"] == 4


def test_any_metric_parses_as_the_generic_result() -> None:
    value = {**sample("engagement"), "metric": "hints", "values": {"hints": 3, "tags": ["a"], "best": None}}
    result = parse_result(json.dumps(value))
    assert type(result) is MetricResult
    assert result.values == {"hints": 3, "tags": ["a"], "best": None}
    assert result.kv_key.startswith("hints.")
    assert result.subject == f"results.hints.{value['key']['student_id']}"


@pytest.mark.parametrize(
    "raw",
    [
        broken("engagement", "values.sessions", KeyError),
        broken("engagement", "values.accuracy", 1.5),
        broken("progression", "values.levels_started", 1.5),
    ],
)
def test_values_a_refinement_does_not_know_fall_back_to_the_generic_result(raw: bytes) -> None:
    # A newer version of a metric may change a value: its readers must not go quiet.
    result = parse_result(raw)
    assert type(result) is MetricResult
    assert json.loads(result.to_json_bytes()) == json.loads(raw)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (broken("progression", "key.student_id", "s*1"), "key.student_id: String should match pattern"),
        (broken("progression", "key", {}), "key: Dictionary should have at least 1 item"),
        (broken("progression", "events", 0), "events: Input should be greater than 0"),
        (broken("progression", "values", [1]), "values: Input should be an object"),
        (broken("progression", "metric", "a.b"), "metric: String should match pattern"),
        (broken("progression", "window.end", "2024-05-01T09:00:00Z"), "window: Value error, window end must be after"),
        (broken("progression", "window.start", "2024-05-01T10:00:00"), "window.start: Input should have timezone info"),
        (b'{"metric": "mastery"}', "key: Field required"),
        (b"[]", "(value): Input should be an object"),
        (b"{", "(value): Invalid JSON"),
    ],
)
def test_documents_without_a_results_shape_are_refused_naming_the_field(raw: bytes, problem: str) -> None:
    with pytest.raises(InvalidResult) as raised:
        parse_result(raw)
    assert any(line.startswith(problem) for line in raised.value.problems), raised.value.problems
    assert isinstance(raised.value, StreamsError)
    assert isinstance(raised.value, ValueError)


def test_results_are_frozen() -> None:
    result = parse_result(json.dumps(sample("engagement")))
    with pytest.raises(ValueError, match="frozen"):
        result.events = 3  # type: ignore[misc]
