"""The NATS path's validator: the event, or a reason naming every offending field."""

from __future__ import annotations

import json

import pytest

from app.web.event_rules import judge_payload
from bridges.public.nats_ingest import Rejection
from contract.events import Event

NOW = 1_714_557_600.0
VALID = {
    "event_id": "ev-1",
    "student_id": "s-42",
    "type": "engagement",
    "name": "heartbeat",
    "occurred_at": "2024-05-01T10:00:00Z",
    "data": {"seconds": 30},
}


def test_a_valid_payload_is_the_event() -> None:
    verdict = judge_payload(json.dumps(VALID).encode(), NOW)
    assert isinstance(verdict, Event)
    assert verdict.event_id == "ev-1"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{", "(body): malformed JSON at line 1 column 1: EOF while parsing an object"),
        (b"\xff", "(body): malformed JSON at line 1 column 1: "),
        (b"7", "(event): must be a JSON object"),
        ({**VALID, "data": {"seconds": 0}}, "data.seconds: must be a number > 0 and <= 3600"),
        ({**VALID, "student_id": "a.b", "extra": 1}, "student_id: must be 1-64 characters of A-Z a-z 0-9 _ -"),
        ({**VALID, "occurred_at": "2024-05-01T10:05:01Z"}, "occurred_at: is more than 5 minutes in the future"),
    ],
)
def test_invalid_payloads_are_rejections_naming_the_field(payload: bytes | dict[str, object], reason: str) -> None:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    verdict = judge_payload(raw, NOW)
    assert isinstance(verdict, Rejection)
    assert verdict.reason.startswith(reason)

