"""What the runtime writes about a window, from tables of cases: times, addresses, strict JSON."""

from __future__ import annotations

import math
from typing import Any

import pytest

from agents.windowed.documents import failed_document, result_address, result_document, rfc3339, strict_json
from tables import ClosedWindow, FailedWindow, OpenWindowResult


@pytest.mark.parametrize(
    ("epoch", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (1_700_000_000, "2023-11-14T22:13:20Z"),
        (1_700_000_000.5, "2023-11-14T22:13:20.500000Z"),  # microseconds only when there are any
    ],
)
def test_times_are_rfc3339_in_utc(epoch: float, text: str) -> None:
    assert rfc3339(epoch) == text


@pytest.mark.parametrize(
    ("metric", "key", "address"),
    [
        ("engagement", {"student_id": "s1"}, ("engagement.s1.120", "results.engagement.s1")),
        ("outcomes", {"student_id": "s1", "game_id": "g-2"}, ("outcomes.s1.g-2.120", "results.outcomes.s1")),
        ("engagement", {"student_id": "s.1"}, None),  # a dot would address another key
        ("engagement", {"student_id": "s*"}, None),
        ("engagement", {"student_id": "x" * 65}, None),
        ("engagement", {"student_id": 7}, None),  # not a string: a custom key function's slip
    ],
)
def test_a_window_is_addressed_by_its_key_parts_when_they_are_ids(
    metric: str, key: dict[str, str], address: tuple[str, str] | None
) -> None:
    assert result_address(ClosedWindow(metric, key, 120.0, 180.0, 3, {})) == address
    # The key's part is remembered (a key's windows close one after another); its start is not.
    later = None if address is None else (address[0].replace(".120", ".180"), address[1])
    assert result_address(ClosedWindow(metric, key, 180.0, 240.0, 3, {})) == later


@pytest.mark.parametrize(("window", "final"), [(ClosedWindow, True), (OpenWindowResult, False)])
def test_a_result_says_whether_it_is_final(window: Any, final: bool) -> None:
    document = result_document(window("engagement", {"student_id": "s1"}, 120.0, 180.0, 3, {"n": 3}))
    assert document == {
        "metric": "engagement",
        "key": {"student_id": "s1"},
        "window": {"start": "1970-01-01T00:02:00Z", "end": "1970-01-01T00:03:00Z"},
        "final": final,
        "events": 3,
        "values": {"n": 3},
    }


def test_a_failed_window_is_dead_lettered_with_its_error() -> None:
    failed = FailedWindow("engagement", {"student_id": "s1"}, 120.0, 180.0, 3, "ZeroDivisionError: x")
    assert strict_json(failed_document(failed)) == (
        b'{"metric":"engagement","key":{"student_id":"s1"},'
        b'"window":{"start":"1970-01-01T00:02:00Z","end":"1970-01-01T00:03:00Z"},'
        b'"events":3,"error":"ZeroDivisionError: x"}'
    )


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_strict_json_refuses_numbers_strict_parsers_cannot_read(number: float) -> None:
    with pytest.raises(ValueError):
        strict_json({"values": {"accuracy": number}})
