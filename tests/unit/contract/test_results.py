"""The typed result models against the contract's values (as the oracle writes them)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from contract.names import METRIC_NAMES
from contract.results import EngagementResult, InvalidResult, OutcomesResult, ProgressionResult, parse_result
from tables.errors import StreamsError
from testkit.oracle import expected_results, generate_sessions

T0 = 1_714_557_600
RESULTS = expected_results(generate_sessions(seed=3, students=8, minutes=6, start_epoch=T0))
MODELS = {"progression": ProgressionResult, "engagement": EngagementResult, "outcomes": OutcomesResult}


def sample(metric: str) -> dict[str, Any]:
    return next(value for value in RESULTS.values() if value["metric"] == metric)


def test_the_metric_names() -> None:
    assert METRIC_NAMES == ("engagement", "outcomes", "progression")
    assert {value["metric"] for value in RESULTS.values()} == set(METRIC_NAMES)


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
    assert result.student_id == result.key.student_id
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


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (broken("progression", "extra", 1), "extra: Extra inputs are not permitted"),
        (broken("engagement", "values.sessions", KeyError), "values.sessions: Field required"),
        (broken("engagement", "values.accuracy", 1.5), "values.accuracy: Input should be less than or equal to 1"),
        (broken("outcomes", "key.game_id", KeyError), "key.game_id: Field required"),
        (broken("progression", "key.game_id", "g1"), "key.game_id: Extra inputs are not permitted"),
        (broken("progression", "key.student_id", "s*1"), "key.student_id: String should match pattern"),
        (broken("progression", "events", 0), "events: Input should be greater than 0"),
        (broken("progression", "window.end", "2024-05-01T09:00:00Z"), "window: Value error, window end must be after"),
        (broken("progression", "window.start", "2024-05-01T10:00:00"), "window.start: Input should have timezone info"),
        (broken("progression", "values.levels_started", 1.5), "values.levels_started: Input should be a valid integer"),
        (b'{"metric": "mastery"}', "(value): Input tag 'mastery' found using 'metric' does not match"),
        (b"[]", "(value): Input should be an object"),
        (b"{", "(value): Invalid JSON"),
    ],
)
def test_values_off_the_contract_are_refused_naming_the_field(raw: bytes, problem: str) -> None:
    with pytest.raises(InvalidResult) as raised:
        parse_result(raw)
    assert any(line.startswith(problem) for line in raised.value.problems), raised.value.problems
    assert isinstance(raised.value, StreamsError)
    assert isinstance(raised.value, ValueError)


def test_results_are_frozen() -> None:
    result = parse_result(json.dumps(sample("engagement")))
    with pytest.raises(ValueError, match="frozen"):
        result.events = 3  # type: ignore[misc]
