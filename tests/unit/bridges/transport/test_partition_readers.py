"""Records as faust sees them: what ``decode_record`` makes of a stored message's envelope."""

from __future__ import annotations

import logging

import pytest
from faust.types import TP
from nats.aio.msg import Msg

from bridges.transport.envelope import HDR_KEY, HDR_TS, encode_headers
from bridges.transport.partition_readers import decode_record
from bridges.transport.reader import Record

TP0 = TP("clicks", 3)
STORED_AT_NS = 1_700_000_000_123_000_000


def record(headers: dict[str, str] | None, data: bytes = b'{"n": 1}', offset: int = 42) -> Record:
    return Record(offset, STORED_AT_NS, Msg(None, subject="s", data=data, headers=headers))  # type: ignore[arg-type]


def test_key_headers_timestamp_and_value_arrive_unchanged() -> None:
    headers = encode_headers(
        msg_id="m", key=b"\x00student-1", value_is_null=False, timestamp=1234.5,
        headers=[("trace", b"abc"), ("trace", b"def")],
    )
    message = decode_record(TP0, record(headers), generation=7)
    assert message is not None
    assert (message.topic, message.partition, message.offset, message.tp) == ("clicks", 3, 42, TP0)
    assert message.key == b"\x00student-1"
    assert message.value == b'{"n": 1}'
    assert message.headers == [("trace", b"abc"), ("trace", b"def")]
    assert message.timestamp == 1234.5
    assert message.generation_id == 7
    assert (message.serialized_key_size, message.serialized_value_size) == (len(b"\x00student-1"), len(b'{"n": 1}'))


def test_a_message_without_our_headers_gets_the_stored_time_and_no_key() -> None:
    message = decode_record(TP0, record(None), generation=0)
    assert message is not None
    assert message.key is None and message.headers == []
    assert message.timestamp == pytest.approx(STORED_AT_NS / 1e9)


def test_the_null_marker_makes_a_tombstone() -> None:
    headers = encode_headers(msg_id="m", key=b"k", value_is_null=True, timestamp=None, headers=None)
    message = decode_record(TP0, record(headers, data=b""), generation=0)
    assert message is not None and message.value is None and message.serialized_value_size == 0


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        pytest.param({HDR_KEY: "not base64!"}, "Faust-Key", id="key"),
        pytest.param({HDR_TS: "yesterday"}, "yesterday", id="timestamp"),
        pytest.param({"Faust-Headers": "[1, 2"}, "Faust-Headers", id="user-headers"),
    ],
)
def test_a_broken_envelope_is_skipped_and_logged_with_its_place(
    headers: dict[str, str], problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="bridges.transport.partition_readers"):
        assert decode_record(TP0, record(headers, offset=9), generation=0) is None
    assert "clicks[3] offset 9" in caplog.text
    assert problem in caplog.text
