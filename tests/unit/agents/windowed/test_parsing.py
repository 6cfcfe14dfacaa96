"""``parsing.loads`` is ``json.loads``: the same value or the same exception, whatever the bytes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.windowed.parsing import loads

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def _outcome(parse: Any, raw: bytes) -> tuple[str, Any]:
    try:
        value = parse(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both are
        return type(exc).__name__, str(exc)
    # repr tells 1 from 1.0 and -0.0 from 0.0, and NaN equals itself there
    return "value", repr(value)


@given(_json_values)
def test_any_json_text_parses_to_what_json_loads_gives(value: Any) -> None:
    raw = json.dumps(value).encode()
    assert _outcome(loads, raw) == _outcome(json.loads, raw)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_float_comes_back_to_the_last_bit(number: float) -> None:
    for text in (repr(number), f"{number:.17e}", f"{number:.25g}"):
        assert _outcome(loads, text.encode()) == _outcome(json.loads, text.encode())


@given(st.binary(max_size=40))
def test_any_bytes_give_what_json_loads_gives(raw: bytes) -> None:
    assert _outcome(loads, raw) == _outcome(json.loads, raw)


@pytest.mark.parametrize(
    "raw",
    [
        # read by json.loads, refused by jiter: the value must be json.loads's
        pytest.param(b'"\\ud800"', id="lone-surrogate-escape"),
        pytest.param(b'{"a":"\xed\xa0\x80"}', id="surrogate-encoded-in-utf-8"),
        pytest.param(b"\xef\xbb\xbf{}", id="utf-8-byte-order-mark"),
        pytest.param('{"a":"\u00e9"}'.encode("utf-16"), id="utf-16"),
        pytest.param('{"a":1}'.encode("utf-32"), id="utf-32"),
        # refused by both: the error must be json.loads's, word for word (dead letters quote it)
        pytest.param(b"", id="empty"),
        pytest.param(b'{"events":[', id="cut-short"),
        pytest.param(b"[1,]", id="trailing-comma"),
        pytest.param(b"01", id="leading-zero"),
        pytest.param(b'"a\tb"', id="control-character"),
        pytest.param(b'"\xff"', id="not-utf-8"),
        pytest.param(b"[" * 5000 + b"]" * 5000, id="nested-past-both-limits"),
        # read by both alike
        pytest.param(b"[NaN,Infinity,-Infinity,1e400]", id="non-finite"),
        pytest.param(b"123456789012345678901234567890", id="big-integer"),
        pytest.param(b'{"a":1,"a":2}', id="duplicate-key"),
    ],
)
def test_what_json_loads_reads_and_jiter_does_not(raw: bytes) -> None:
    try:
        expected = _outcome(json.loads, raw)
    except RecursionError:
        with pytest.raises(RecursionError):
            loads(raw)
        return
    assert _outcome(loads, raw) == expected
