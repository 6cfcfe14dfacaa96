"""The oracle against small cases computed by hand; what makes it trustworthy as a reference."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from itertools import count
from typing import Any

import pytest

from contract.events import MAX_BATCH_EVENTS, validate_batch
from testkit.oracle import expected_results, format_window_time, generate_sessions

T0 = 1_714_557_600  # 2024-05-01T10:00:00Z, a multiple of 60 and of 300
_ids = count()


def ev(type_: str, name: str, at: str, data: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """A valid event at ``at`` (a time on 2024-05-01, e.g. "10:00:30" or "12:00:30+02:00")."""
    occurred_at = f"2024-05-01T{at}" + ("" if "+" in at or "-" in at else "Z")
    event = {"event_id": f"e{next(_ids)}", "student_id": "s1", "type": type_, "name": name}
    if type_ == "game":
        event["game_id"] = "g1"
    return {**event, "occurred_at": occurred_at, "data": data or {}, **fields}


def started(at: str, level: int, **fields: Any) -> dict[str, Any]:
    return ev("game", "level_started", at, {"level": level}, **fields)


def completed(at: str, level: int, score: float, **fields: Any) -> dict[str, Any]:
    return ev("game", "level_completed", at, {"level": level, "score": score, "duration_ms": 1000}, **fields)


def failed(at: str, level: int, **fields: Any) -> dict[str, Any]:
    return ev("game", "level_failed", at, {"level": level, "duration_ms": 500, "score": 7}, **fields)


def finished(at: str, outcome: str, score: float, duration_ms: int, **fields: Any) -> dict[str, Any]:
    data = {"outcome": outcome, "score": score, "duration_ms": duration_ms}
    return ev("game", "game_finished", at, data, **fields)


def answer(at: str, correct: Any = None, **fields: Any) -> dict[str, Any]:
    data = {} if correct is None else {"correct": correct}
    return ev("interaction", "answer_submitted", at, data, **fields)


def heartbeat(at: str, seconds: float, **fields: Any) -> dict[str, Any]:
    return ev("engagement", "heartbeat", at, {"seconds": seconds}, **fields)


def values(results: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
    return results[key]["values"]


def test_a_full_result_value() -> None:
    results = expected_results([answer("10:00:10", True), answer("10:00:50", False)])
    assert results == {
        f"engagement.s1.{T0}": {
            "metric": "engagement",
            "key": {"student_id": "s1"},
            "window": {"start": "2024-05-01T10:00:00Z", "end": "2024-05-01T10:01:00Z"},
            "final": True,
            "events": 2,
            "values": {
                "interactions": 2,
                "answers": 2,
                "correct": 1,
                "accuracy": 0.5,
                "active_seconds": 0,
                "sessions": 0,
            },
        }
    }


@pytest.mark.parametrize(
    ("at", "start"),
    [
        ("10:00:00", T0),  # the start belongs to the window
        ("10:00:59.999999", T0),  # the end does not
        ("10:01:00", T0 + 60),
        ("12:00:59.999+02:00", T0),  # offsets are the same instant in UTC
        ("09:59:59.999999", T0 - 60),
        ("04:31:00-05:30", T0 + 60),
    ],
)
def test_an_event_belongs_to_the_window_its_time_falls_in(at: str, start: int) -> None:
    assert list(expected_results([answer(at)])) == [f"engagement.s1.{start}"]


def test_the_window_size_is_a_parameter() -> None:
    events = [answer("10:00:00"), answer("10:04:59"), answer("10:05:00")]
    results = expected_results(events, window_seconds=300)
    assert {key: result["events"] for key, result in results.items()} == {
        f"engagement.s1.{T0}": 2,
        f"engagement.s1.{T0 + 300}": 1,
    }
    assert results[f"engagement.s1.{T0}"]["window"] == {
        "start": "2024-05-01T10:00:00Z",
        "end": "2024-05-01T10:05:00Z",
    }


@pytest.mark.parametrize("window_seconds", [0, -60, 1.5, "60"])
def test_the_window_size_is_a_positive_whole_number_of_seconds(window_seconds: Any) -> None:
    with pytest.raises(ValueError, match="window_seconds"):
        expected_results([], window_seconds=window_seconds)


def test_window_times_are_written_in_utc_with_whole_seconds() -> None:
    assert format_window_time(0) == "1970-01-01T00:00:00Z"
    assert format_window_time(T0 + 60) == "2024-05-01T10:01:00Z"


def test_progression_counts_levels_in_a_window() -> None:
    events = [
        started("10:00:01", 0),
        completed("10:00:10", 0, 100),
        started("10:00:11", 1),
        failed("10:00:20", 1),  # its score of 7 is not counted: only completed levels score
        started("10:00:21", 1),
        completed("10:00:40", 1, 50.5),
        started("10:00:41", 2),
        finished("10:00:50", "abandon", 150, 49000),  # a game event, but not a level
        started("10:01:05", 0),  # the next window
    ]
    results = expected_results(events)
    assert results[f"progression.s1.{T0}"]["events"] == 7
    assert values(results, f"progression.s1.{T0}") == {
        "levels_started": 4,
        "levels_completed": 2,
        "levels_failed": 1,
        "max_level": 1,
        "score": 150.5,
        "completion_rate": pytest.approx(2 / 3),
    }
    assert values(results, f"progression.s1.{T0 + 60}") == {
        "levels_started": 1,
        "levels_completed": 0,
        "levels_failed": 0,
        "max_level": None,
        "score": 0,
        "completion_rate": None,
    }


def test_max_level_is_the_largest_completed_level_not_the_latest() -> None:
    events = [completed("10:00:01", 5, 1), completed("10:00:02", 2, 1), started("10:00:03", 9)]
    events.append(failed("10:00:04", 8))
    assert values(expected_results(events), f"progression.s1.{T0}")["max_level"] == 5


def test_only_failures_make_a_completion_rate_of_zero() -> None:
    result = values(expected_results([failed("10:00:01", 0), failed("10:00:02", 0)]), f"progression.s1.{T0}")
    assert (result["completion_rate"], result["score"], result["max_level"]) == (0.0, 0, None)


def test_engagement_counts_every_event_of_the_student() -> None:
    events = [
        ev("engagement", "session_started", "10:00:00"),
        answer("10:00:05", True),
        answer("10:00:06", True),
        answer("10:00:07", False),
        answer("10:00:08"),  # answered nothing: an interaction, not an answer
        ev("interaction", "hint_opened", "10:00:09"),
        heartbeat("10:00:30", 30),
        heartbeat("10:00:45", 12.5),
        started("10:00:50", 0),  # a game event counts as an event, nothing more
        ev("engagement", "session_started", "10:00:59"),
        ev("engagement", "tab_hidden", "10:00:59.5"),
    ]
    results = expected_results(events)
    assert results[f"engagement.s1.{T0}"]["events"] == 11
    assert values(results, f"engagement.s1.{T0}") == {
        "interactions": 5,
        "answers": 3,
        "correct": 2,
        "accuracy": pytest.approx(2 / 3),
        "active_seconds": 42.5,
        "sessions": 2,
    }


def test_engagement_without_answers_has_no_accuracy() -> None:
    results = expected_results([heartbeat("10:00:00", 30), heartbeat("10:00:30", 30)])
    result = values(results, f"engagement.s1.{T0}")
    assert result == {
        "interactions": 0,
        "answers": 0,
        "correct": 0,
        "accuracy": None,
        "active_seconds": 60,
        "sessions": 0,
    }
    assert type(result["active_seconds"]) is int


def test_outcomes_per_student_and_game() -> None:
    events = [
        finished("10:00:10", "win", 100, 1000),
        finished("10:00:20", "loss", 51, 3000),
        finished("10:00:30", "win", 0, 2001),
        finished("10:00:40", "abandon", 10.5, 500, game_id="g2"),
        finished("10:00:50", "win", 5, 5, student_id="s2"),
    ]
    results = expected_results(events)
    assert {key for key in results if key.startswith("outcomes.")} == {
        f"outcomes.s1.g1.{T0}",
        f"outcomes.s1.g2.{T0}",
        f"outcomes.s2.g1.{T0}",
    }
    assert results[f"outcomes.s1.g1.{T0}"]["key"] == {"student_id": "s1", "game_id": "g1"}
    assert results[f"outcomes.s1.g1.{T0}"]["events"] == 3
    assert values(results, f"outcomes.s1.g1.{T0}") == {
        "games": 3,
        "wins": 2,
        "losses": 1,
        "abandons": 0,
        "win_rate": pytest.approx(2 / 3),
        "mean_score": pytest.approx(151 / 3),
        "mean_duration_ms": pytest.approx(6001 / 3),
    }
    assert values(results, f"outcomes.s1.g2.{T0}") == {
        "games": 1,
        "wins": 0,
        "losses": 0,
        "abandons": 1,
        "win_rate": 0.0,
        "mean_score": 10.5,
        "mean_duration_ms": 500.0,
    }


def test_a_window_without_counted_events_has_no_result() -> None:
    # Interactions alone: engagement only; no progression, no outcomes.
    assert set(expected_results([answer("10:00:00", True)])) == {f"engagement.s1.{T0}"}
    # Levels alone: no outcomes; a finished game alone: no progression.
    assert set(expected_results([started("10:00:00", 0)])) == {f"engagement.s1.{T0}", f"progression.s1.{T0}"}
    assert set(expected_results([finished("10:00:00", "win", 1, 1)])) == {
        f"engagement.s1.{T0}",
        f"outcomes.s1.g1.{T0}",
    }
    assert expected_results([]) == {}


def test_students_are_kept_apart() -> None:
    results = expected_results([answer("10:00:00", True), answer("10:00:01", False, student_id="s2")])
    assert values(results, f"engagement.s1.{T0}")["correct"] == 1
    assert values(results, f"engagement.s2.{T0}")["correct"] == 0


def test_the_first_event_with_an_id_counts_and_later_ones_do_not() -> None:
    first = completed("10:00:01", 1, 10)
    again = {**completed("10:00:02", 4, 99), "event_id": first["event_id"]}
    moved = {**completed("10:01:30", 4, 99), "event_id": first["event_id"]}  # even in another window
    results = expected_results([first, again, moved])
    assert set(results) == {f"engagement.s1.{T0}", f"progression.s1.{T0}"}
    assert results[f"progression.s1.{T0}"]["events"] == 1
    assert values(results, f"progression.s1.{T0}")["score"] == 10


def test_excluded_events_count_nowhere() -> None:
    late = completed("10:00:02", 1, 99)
    kept = completed("10:00:01", 0, 10)
    game = finished("10:00:03", "win", 1, 1, event_id="x")
    results = expected_results([kept, late, game], exclude_ids={late["event_id"], "x"})
    assert set(results) == {f"engagement.s1.{T0}", f"progression.s1.{T0}"}
    assert results[f"engagement.s1.{T0}"]["events"] == 1
    assert values(results, f"progression.s1.{T0}")["score"] == 10
    assert expected_results([late], exclude_ids=[late["event_id"]]) == {}


def test_float_sums_are_correctly_rounded() -> None:
    # Summed left to right, 0.1 ten times is 0.9999999999999999.
    results = expected_results([heartbeat(f"10:00:{n:02d}", 0.1) for n in range(10)])
    assert values(results, f"engagement.s1.{T0}")["active_seconds"] == 1.0


START = T0 + 7  # not on a window boundary


@pytest.fixture(scope="module")
def generated() -> list[dict[str, Any]]:
    return generate_sessions(seed=7, students=4, minutes=30, start_epoch=START)


def test_generated_sessions_are_deterministic(generated: list[dict[str, Any]]) -> None:
    assert generate_sessions(seed=7, students=4, minutes=30, start_epoch=START) == generated
    assert generate_sessions(seed=8, students=4, minutes=30, start_epoch=START) != generated


def test_generated_events_are_valid_unique_and_in_range(generated: list[dict[str, Any]]) -> None:
    end = START + 30 * 60
    for offset in range(0, len(generated), MAX_BATCH_EVENTS):
        validate_batch({"events": generated[offset : offset + MAX_BATCH_EVENTS]}, now=end)
    assert len({event["event_id"] for event in generated}) == len(generated)
    times = [datetime.fromisoformat(event["occurred_at"]).timestamp() for event in generated]
    assert times == sorted(times)
    assert START <= times[0] and times[-1] < end
    assert {event["student_id"] for event in generated} == {"s0000", "s0001", "s0002", "s0003"}


def test_generated_events_cover_every_kind(generated: list[dict[str, Any]]) -> None:
    kinds = Counter((event["type"], event["name"]) for event in generated)
    assert set(kinds) == {
        ("engagement", "session_started"),
        ("engagement", "heartbeat"),
        ("interaction", "answer_submitted"),
        ("interaction", "hint_opened"),
        ("game", "level_started"),
        ("game", "level_completed"),
        ("game", "level_failed"),
        ("game", "game_finished"),
    }
    data = [event["data"] for event in generated]
    assert {d["outcome"] for d in data if "outcome" in d} == {"win", "loss", "abandon"}
    answers = [event["data"] for event in generated if event["type"] == "interaction"]
    assert {d.get("correct") for d in answers} == {True, False, None}
    failures = [event["data"] for event in generated if event["name"] == "level_failed"]
    assert {"score" in d for d in failures} == {True, False}
    assert {event["occurred_at"][-6:] for event in generated} > {"+02:00", "+05:30", "-07:00"}
    assert any(event["occurred_at"].endswith("Z") for event in generated)


def test_the_oracle_runs_on_generated_sessions(generated: list[dict[str, Any]]) -> None:
    results = expected_results(generated)
    assert {result["metric"] for result in results.values()} == {"progression", "engagement", "outcomes"}
    # Every event is in exactly one engagement window.
    assert sum(r["events"] for r in results.values() if r["metric"] == "engagement") == len(generated)
