"""What a faust message looks like on a NATS subject.

The value is the NATS payload, untouched. Everything else travels in NATS headers, so other NATS
clients can read and write faust topics without this library:

    Nats-Msg-Id     deduplication id (set by every publisher of this project)
    Faust-Key       the message key, base64 (absent: no key)
    Faust-Ts        producer timestamp, float epoch seconds (absent: the stream's own timestamp)
    Faust-Null      "1" when the value is None (a changelog tombstone), as opposed to b""
    Faust-Headers   the faust headers, JSON [[name, base64 value], ...] (absent: none)
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "HDR_HEADERS",
    "HDR_KEY",
    "HDR_MSG_ID",
    "HDR_NULL",
    "HDR_TS",
    "MalformedEnvelope",
    "decode_key",
    "decode_user_headers",
    "encode_headers",
]

HDR_MSG_ID = "Nats-Msg-Id"
HDR_KEY = "Faust-Key"
HDR_TS = "Faust-Ts"
HDR_NULL = "Faust-Null"
HDR_HEADERS = "Faust-Headers"

HeadersArg = Sequence[tuple[str, bytes]] | Mapping[str, bytes] | None


class MalformedEnvelope(ValueError):
    """A header of ours could not be decoded; the message is skipped and logged."""


def encode_headers(
    *,
    msg_id: str,
    key: bytes | None,
    value_is_null: bool,
    timestamp: float | None,
    headers: HeadersArg,
) -> dict[str, str]:
    out = {HDR_MSG_ID: msg_id}
    if key is not None:
        out[HDR_KEY] = base64.b64encode(key).decode()
    if timestamp is not None:
        out[HDR_TS] = repr(float(timestamp))
    if value_is_null:
        out[HDR_NULL] = "1"
    if headers:
        items = headers.items() if isinstance(headers, Mapping) else headers
        out[HDR_HEADERS] = json.dumps(
            [[name, base64.b64encode(_as_bytes(val)).decode()] for name, val in items],
            separators=(",", ":"),
        )
    return out


def decode_key(headers: Mapping[str, str] | None) -> bytes | None:
    if not headers:
        return None
    raw = headers.get(HDR_KEY)
    if raw is None:
        return None
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:  # ValueError: non-ASCII characters
        raise MalformedEnvelope(f"{HDR_KEY} is not base64: {exc}") from None


def decode_user_headers(headers: Mapping[str, str] | None) -> list[tuple[str, bytes]]:
    if not headers:
        return []
    raw = headers.get(HDR_HEADERS)
    if raw is None:
        return []
    try:
        return [(str(name), base64.b64decode(val, validate=True)) for name, val in json.loads(raw)]
    except (ValueError, TypeError, binascii.Error) as exc:
        raise MalformedEnvelope(f"{HDR_HEADERS} is malformed: {exc}") from None


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"faust header values must be bytes or str, not {type(value).__name__}")
