"""The prebuilt compact encoders write exactly what json's own encoder writes with their options."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tables.compact_json import compact_encoder

OPTIONS = [
    {"sort_keys": sort_keys, "ensure_ascii": ensure_ascii, "allow_nan": allow_nan}
    for sort_keys in (False, True)
    for ensure_ascii in (False, True)
    for allow_nan in (False, True)
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()  # escapes, control characters, astral planes
)
documents = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def reference(options: dict[str, bool]) -> json.JSONEncoder:
    return json.JSONEncoder(separators=(",", ":"), **options)


@pytest.mark.parametrize("options", OPTIONS, ids=str)
@given(document=documents)
@settings(max_examples=60, deadline=None)
def test_the_same_text_as_jsons_encoder(options: dict[str, bool], document: Any) -> None:
    assert compact_encoder(**options)(document) == reference(options).encode(document)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), {"x": [1, float("nan")]}])
def test_non_finite_numbers_follow_allow_nan(value: Any) -> None:
    assert compact_encoder(allow_nan=True)(value) == reference({"allow_nan": True}).encode(value)
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        compact_encoder(allow_nan=False)(value)


def test_what_json_cannot_write_is_refused_as_json_refuses_it() -> None:
    with pytest.raises(TypeError, match="Object of type set is not JSON serializable"):
        compact_encoder()({"a": {1, 2}})
    with pytest.raises(TypeError, match="keys must be str, int, float, bool or None, not tuple"):
        compact_encoder()({(1, 2): 3})


def test_one_encoder_serves_call_after_call_even_after_a_refusal() -> None:
    encode = compact_encoder(sort_keys=True, allow_nan=False)
    with pytest.raises(ValueError):
        encode({"b": float("nan")})
    assert [encode({"b": 1, "a": [True, None]}) for _ in range(3)] == ['{"a":[true,null],"b":1}'] * 3
