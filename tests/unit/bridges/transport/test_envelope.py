"""The faust message envelope in NATS headers: keys, user headers, the null marker, timestamps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridges.transport.envelope import (
    HDR_HEADERS,
    HDR_KEY,
    HDR_MSG_ID,
    HDR_NULL,
    HDR_TS,
    MalformedEnvelope,
    decode_key,
    decode_user_headers,
    encode_headers,
)


def encode(
    *,
    key: bytes | None = None,
    value_is_null: bool = False,
    timestamp: float | None = None,
    headers: Sequence[tuple[str, bytes]] | Mapping[str, bytes] | None = None,
) -> dict[str, str]:
    return encode_headers(
        msg_id="id-1", key=key, value_is_null=value_is_null, timestamp=timestamp, headers=headers
    )


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(None, id="none"),
        pytest.param(b"", id="empty-is-not-none"),
        pytest.param(b"student-42", id="ascii"),
        pytest.param(bytes(range(256)), id="every-byte"),
        pytest.param("é🎉".encode(), id="utf8"),
    ],
)
def test_key_round_trip(key: bytes | None) -> None:
    assert decode_key(encode(key=key)) == key


def test_no_key_means_no_key_header() -> None:
    assert HDR_KEY not in encode(key=None)
    assert HDR_KEY in encode(key=b"")


@given(st.none() | st.binary())
def test_key_round_trip_property(key: bytes | None) -> None:
    assert decode_key(encode(key=key)) == key


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param(None, [], id="none"),
        pytest.param([], [], id="empty"),
        pytest.param([("trace", b"t1")], [("trace", b"t1")], id="one"),
        pytest.param(
            [("trace", b"t1"), ("trace", b"dup"), ("other", b"")],
            [("trace", b"t1"), ("trace", b"dup"), ("other", b"")],
            id="duplicate-names-and-order-kept",
        ),
        pytest.param({"a": b"1", "b": b"2"}, [("a", b"1"), ("b", b"2")], id="mapping"),
        pytest.param([("s", "text é")], [("s", "text é".encode())], id="str-value-as-utf8"),
        pytest.param([("bin", bytes(range(256)))], [("bin", bytes(range(256)))], id="binary-value"),
        pytest.param([("ünï.cödé name", b"v")], [("ünï.cödé name", b"v")], id="unicode-name"),
    ],
)
def test_user_headers_round_trip(
    headers: Sequence[tuple[str, bytes]] | Mapping[str, bytes] | None, expected: list[tuple[str, bytes]]
) -> None:
    encoded = encode(headers=headers)
    assert decode_user_headers(encoded) == expected
    assert (HDR_HEADERS in encoded) == bool(expected)


@given(st.lists(st.tuples(st.text(), st.binary())))
def test_user_headers_round_trip_property(headers: list[tuple[str, bytes]]) -> None:
    assert decode_user_headers(encode(headers=headers)) == headers


def test_a_header_value_that_is_neither_bytes_nor_str_is_refused() -> None:
    with pytest.raises(TypeError, match="int"):
        encode(headers=[("n", 5)])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("value_is_null", "marker"),
    [pytest.param(True, "1", id="none-value"), pytest.param(False, None, id="empty-bytes-value")],
)
def test_null_value_marker_tells_none_from_empty_bytes(value_is_null: bool, marker: str | None) -> None:
    assert encode(value_is_null=value_is_null).get(HDR_NULL) == marker


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_timestamp_survives_exactly(timestamp: float) -> None:
    assert float(encode(timestamp=timestamp)[HDR_TS]) == timestamp


def test_minimal_envelope_is_only_the_message_id() -> None:
    assert encode() == {HDR_MSG_ID: "id-1"}


@pytest.mark.parametrize("headers", [None, {}, {HDR_MSG_ID: "x"}])
def test_absent_headers_decode_as_no_key_and_no_user_headers(headers: dict[str, str] | None) -> None:
    assert decode_key(headers) is None
    assert decode_user_headers(headers) == []


@pytest.mark.parametrize("raw", ["not base64!", "abc", "a=b="])
def test_malformed_key_raises_malformed_envelope_naming_the_header(raw: str) -> None:
    with pytest.raises(MalformedEnvelope, match=HDR_KEY):
        decode_key({HDR_KEY: raw})


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("not json", id="not-json"),
        pytest.param("null", id="json-null"),
        pytest.param("[1]", id="item-not-a-pair"),
        pytest.param('[["a"]]', id="pair-too-short"),
        pytest.param('[["a","b","c"]]', id="pair-too-long"),
        pytest.param('{"a":"YQ=="}', id="object-not-list"),
        pytest.param('[["a","%%%"]]', id="value-not-base64"),
        pytest.param('[["a",5]]', id="value-not-a-string"),
    ],
)
def test_malformed_user_headers_raise_malformed_envelope_naming_the_header(raw: str) -> None:
    with pytest.raises(MalformedEnvelope, match=HDR_HEADERS):
        decode_user_headers({HDR_HEADERS: raw})


def test_a_non_ascii_key_header_raises_malformed_envelope() -> None:
    # Another NATS client may put any UTF-8 text in the header; it is malformed like any other.
    with pytest.raises(MalformedEnvelope, match=HDR_KEY):
        decode_key({HDR_KEY: "é"})
