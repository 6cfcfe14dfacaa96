"""Storage keys: the documented format, NATS-safe characters, and a lossless round trip."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tables.errors import StateError
from tables.storage_keys import parse_window_key, watermark_key, window_key

NATS_KV_KEY = re.compile(r"[-/_=.A-Za-z0-9]+")


@pytest.mark.parametrize(
    ("key", "start_us", "storage_key"),
    [
        (("s42",), 1_714_557_600_000_000, "answers.window.1714557600000000.s42"),
        (("s42", "g-7_x"), 0, "answers.window.0.s42.g-7_x"),
        (("ann@x.org",), -60_000_000, "answers.window.-60000000.ann=40x=2Eorg"),
        (("a b", "=", "é"), 5, "answers.window.5.a=20b.=3D.=C3=A9"),
    ],
)
def test_format(key: tuple[str, ...], start_us: int, storage_key: str) -> None:
    assert window_key("answers", key, start_us) == storage_key
    assert parse_window_key("answers", storage_key, len(key)) == (key, start_us)


def test_watermark_key() -> None:
    assert watermark_key("answers") == "answers.watermark"


@given(
    key=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=3).map(tuple),
    start_us=st.integers(-(10**17), 10**17),
)
def test_any_key_round_trips_through_nats_safe_characters(key: tuple[str, ...], start_us: int) -> None:
    storage_key = window_key("m-1", key, start_us)
    assert NATS_KV_KEY.fullmatch(storage_key)
    assert "" not in storage_key.split(".")
    assert parse_window_key("m-1", storage_key, len(key)) == (key, start_us)


@pytest.mark.parametrize(
    ("storage_key", "problem"),
    [
        ("other.window.0.s1", "not a storage key of this metric"),
        ("answers.window.0.s1.g1", "not a storage key of this metric"),
        ("answers.windows.0.s1", "not a storage key of this metric"),
        ("answers.window.0", "not a storage key of this metric"),
        ("answers.window.1.5.s1", "not a storage key of this metric"),
        ("answers.window.x.s1", "is not an integer"),
        ("answers.window.0.a=2", "not a valid encoded part"),
        ("answers.window.0.a=zz", "not a valid encoded part"),
        ("answers.window.0.a b", "not a valid encoded part"),
        ("answers.window.0.=FF", "does not decode to UTF-8"),
    ],
)
def test_foreign_or_damaged_keys_are_state_errors(storage_key: str, problem: str) -> None:
    with pytest.raises(StateError) as caught:
        parse_window_key("answers", storage_key, 1)
    assert caught.value.key == storage_key
    assert problem in caught.value.problem
