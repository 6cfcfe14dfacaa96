"""Batch records: what ingest writes and the windowed agents read, and single events beside them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tables.batch import BATCH_PREFIX, Record, decode_record, encode_batch

EVENT_A = b'{"data":{},"event_id":"a","student_id":"s1"}'
EVENT_B = b'{"data":{"x":[1,2]},"event_id":"b","student_id":"s2"}'


@pytest.mark.parametrize(
    ("arrivals", "watermark", "expected"),
    [
        pytest.param(None, None, Record([({"data": {}, "event_id": "a", "student_id": "s1"}, 100.0),
                                         ({"data": {"x": [1, 2]}, "event_id": "b", "student_id": "s2"}, 100.0)], None),
                     id="arrived-when-stored"),
        pytest.param([90.5, 91.25], None, Record([({"data": {}, "event_id": "a", "student_id": "s1"}, 90.5),
                                                 ({"data": {"x": [1, 2]}, "event_id": "b", "student_id": "s2"}, 91.25)], None),
                     id="arrivals-carried"),
        pytest.param([90.5, 91.25], 89.75, Record([({"data": {}, "event_id": "a", "student_id": "s1"}, 90.5),
                                                  ({"data": {"x": [1, 2]}, "event_id": "b", "student_id": "s2"}, 91.25)], 89.75),
                     id="with-a-watermark"),
    ],
)
def test_a_batch_round_trips(arrivals: list[float] | None, watermark: float | None, expected: Record) -> None:
    raw = encode_batch([EVENT_A, EVENT_B], arrivals, watermark=watermark)
    assert raw.startswith(BATCH_PREFIX)
    assert EVENT_A + b"," + EVENT_B in raw  # the events' own bytes, not re-encoded
    assert json.loads(raw)  # plain JSON for any reader
    assert decode_record(raw, stored_at=100.0) == expected


def test_the_watermark_keeps_every_digit_of_the_time() -> None:
    raw = encode_batch([EVENT_A], watermark=1_714_557_600.123456)
    assert decode_record(raw, 0.0).watermark == 1_714_557_600.123456


def test_a_single_event_is_a_record_of_one_arrived_when_stored() -> None:
    assert decode_record(EVENT_A, stored_at=5.0) == Record([(json.loads(EVENT_A), 5.0)], None)


def test_arrivals_must_match_the_events() -> None:
    with pytest.raises(ValueError, match="1 arrival times for 2 events"):
        encode_batch([EVENT_A, EVENT_B], [1.0])


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({"events": [{}], "arrived_at": [1.0, 2.0]}, id="one-arrival-too-many"),
        pytest.param({"events": [{}], "arrived_at": ["yesterday"]}, id="an-arrival-not-a-number"),
        pytest.param({"events": [{}], "arrived_at": [True]}, id="an-arrival-a-bool"),
        pytest.param({"events": [{}], "watermark": "soon"}, id="a-watermark-not-a-number"),
    ],
)
def test_a_batch_of_the_wrong_shape_is_refused(document: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="a batch must be"):
        decode_record(json.dumps(document, separators=(",", ":")).encode(), 0.0)


def test_an_object_that_does_not_start_like_a_batch_is_one_event() -> None:
    # {"events": {...}} is no batch: it is judged as one event (and the contract refuses it there).
    assert decode_record(b'{"events":{"a":1}}', 3.0) == Record([({"events": {"a": 1}}, 3.0)], None)


def test_a_record_that_is_not_json_is_refused() -> None:
    with pytest.raises(ValueError):
        decode_record(b'{"events":[', 0.0)
