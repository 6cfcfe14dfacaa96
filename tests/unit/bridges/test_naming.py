"""How faust names map onto JetStream: token encoding, stream/subject shapes, key tokens, KV keys."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.js.kv import VALID_KEY_RE

from bridges.naming import Naming, decode_token, encode_token, key_token
from tables.errors import ConfigError
from testkit.subjects import subject_matches

#: what one NATS subject token may hold (no separators, wildcards or whitespace)
_TOKEN_FORBIDDEN = set(". *>\t\r\n")


# -- encode_token / decode_token ---------------------------------------------------------------

TOKENS = [
    pytest.param("orders", "orders", id="safe-name-unchanged"),
    pytest.param("app-table_changelog", "app-table_changelog", id="dash-underscore-unchanged"),
    pytest.param("a.b", "a=2Eb", id="dot"),
    pytest.param("with space", "with=20space", id="space"),
    pytest.param("x=y", "x=3Dy", id="equals-is-escaped"),
    pytest.param("=41", "=3D41", id="looks-already-encoded"),
    pytest.param("tilde~", "tilde=7E", id="tilde"),
    pytest.param("a*b>c", "a=2Ab=3Ec", id="wildcards"),
    pytest.param("é", "=C3=A9", id="two-byte-utf8"),
    pytest.param("🎉", "=F0=9F=8E=89", id="four-byte-utf8"),
]


@pytest.mark.parametrize(("name", "token"), TOKENS)
def test_encode_token_table(name: str, token: str) -> None:
    assert encode_token(name) == token


@pytest.mark.parametrize(("name", "token"), TOKENS)
def test_decode_token_inverts_the_table(name: str, token: str) -> None:
    assert decode_token(token) == name


@given(st.text(min_size=1))
def test_encode_decode_round_trip(name: str) -> None:
    token = encode_token(name)
    assert decode_token(token) == name
    assert not _TOKEN_FORBIDDEN & set(token)
    assert token.isascii()


def test_encode_token_rejects_an_empty_name() -> None:
    with pytest.raises(ConfigError) as caught:
        encode_token("")
    assert caught.value.field == "name"
    assert "'name'" in str(caught.value)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda n: n.stream("", 0), id="stream"),
        pytest.param(lambda n: n.subject("", 0), id="subject"),
        pytest.param(lambda n: n.topic_key(""), id="topic-key"),
        pytest.param(lambda n: n.offset_key("", "t", 0), id="offset-key-group"),
        pytest.param(lambda n: n.offset_key("g", "", 0), id="offset-key-topic"),
    ],
)
def test_empty_names_are_rejected_everywhere(call: Callable[[Naming], object]) -> None:
    with pytest.raises(ConfigError):
        call(Naming())


# -- streams and subjects --------------------------------------------------------------------

SHAPES = [
    # (method, args, expected)
    pytest.param("stream", ("orders", 3), "FAUST_orders_3", id="stream"),
    pytest.param("stream", ("a.b", 0), "FAUST_a=2Eb_0", id="stream-encoded-topic"),
    pytest.param("subject", ("orders", 3), "faust.orders.3", id="subject"),
    pytest.param("fence_subject", ("tbl", 1), "faust.tbl.1.fence", id="fence"),
    pytest.param("key_subject", ("tbl", 1, b"k"), "faust.tbl.1.k.baw", id="key-subject"),
    pytest.param("key_subject", ("tbl", 1, None), "faust.tbl.1.k.n", id="key-subject-none-key"),
    pytest.param("data_filter", ("orders", 2, False), "faust.orders.2", id="data-filter-ordinary"),
    pytest.param("data_filter", ("tbl", 2, True), "faust.tbl.2.k.>", id="data-filter-compacting"),
    pytest.param("stream_subjects", ("orders", 2, False), ["faust.orders.2"], id="subjects-ordinary"),
    pytest.param("stream_subjects", ("tbl", 2, True), ["faust.tbl.2.>"], id="subjects-compacting"),
]


@pytest.mark.parametrize(("method", "args", "expected"), SHAPES)
def test_name_shapes(method: str, args: tuple, expected: object) -> None:
    assert getattr(Naming(), method)(*args) == expected


def test_the_prefix_is_used_lower_case_in_subjects_and_upper_case_in_streams() -> None:
    naming = Naming("dev-1")
    assert naming.stream("t", 0) == "DEV-1_t_0"
    assert naming.subject("t", 0) == "dev-1.t.0"
    assert (naming.topics_bucket, naming.offsets_bucket, naming.groups_bucket) == (
        "dev-1_topics",
        "dev-1_offsets",
        "dev-1_groups",
    )


@given(topic=st.text(min_size=1), partition=st.integers(0, 999), key=st.none() | st.binary(max_size=200))
def test_compacting_subjects_data_in_the_stream_and_the_filter_fence_only_in_the_stream(
    topic: str, partition: int, key: bytes | None
) -> None:
    naming = Naming()
    (stream_subject,) = naming.stream_subjects(topic, partition, True)
    data_filter = naming.data_filter(topic, partition, True)
    key_subject = naming.key_subject(topic, partition, key)
    fence = naming.fence_subject(topic, partition)
    assert subject_matches(stream_subject, key_subject)
    assert subject_matches(data_filter, key_subject)
    assert subject_matches(stream_subject, fence)
    assert not subject_matches(data_filter, fence)


@given(topic=st.text(min_size=1), partition=st.integers(0, 999))
def test_an_ordinary_topic_stream_holds_exactly_its_subject(topic: str, partition: int) -> None:
    naming = Naming()
    assert naming.stream_subjects(topic, partition, False) == [naming.subject(topic, partition)]
    assert naming.data_filter(topic, partition, False) == naming.subject(topic, partition)


@given(st.text(min_size=1), st.integers(0, 999))
def test_stream_names_hold_no_character_a_stream_name_forbids(topic: str, partition: int) -> None:
    name = Naming().stream(topic, partition)
    assert not (set(name) & (_TOKEN_FORBIDDEN | set("/\\")))


@given(st.tuples(st.text(min_size=1), st.integers(0, 99)), st.tuples(st.text(min_size=1), st.integers(0, 99)))
def test_distinct_partitions_get_distinct_streams(a: tuple[str, int], b: tuple[str, int]) -> None:
    naming = Naming()
    assert (naming.stream(*a) == naming.stream(*b)) == (a == b)


# -- key tokens ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        pytest.param(None, "n", id="none"),
        pytest.param(b"", "b", id="empty-is-not-none"),
        pytest.param(b"k", "baw", id="short"),
        pytest.param(b"\xfb\xff", "b-_8", id="urlsafe-alphabet"),
        pytest.param(b"x" * 96, "b" + "eHh4" * 32, id="longest-inlined"),
        pytest.param(b"x" * 97, "h" + hashlib.sha256(b"x" * 97).hexdigest(), id="shortest-hashed"),
    ],
)
def test_key_token_table(key: bytes | None, expected: str) -> None:
    assert key_token(key) == expected


@given(st.lists(st.none() | st.binary(max_size=200), unique=True, min_size=2))
def test_key_tokens_never_collide(keys: list[bytes | None]) -> None:
    tokens = [key_token(key) for key in keys]
    assert len(set(tokens)) == len(tokens)


def test_an_inlined_key_spelling_a_hash_does_not_collide_with_the_hashed_key() -> None:
    long_key = b"y" * 200
    digest = hashlib.sha256(long_key).hexdigest()
    # 64 hex digits are valid base64: this 48-byte key inlines to exactly the digest's characters.
    lookalike = base64.urlsafe_b64decode(digest)
    assert key_token(lookalike)[1:] == key_token(long_key)[1:]
    assert key_token(lookalike) != key_token(long_key)


@given(st.none() | st.binary(max_size=300))
def test_key_tokens_are_one_short_subject_token(key: bytes | None) -> None:
    token = key_token(key)
    assert token and not (_TOKEN_FORBIDDEN & set(token))
    assert len(token) <= 1 + 128  # 96 bytes of base64 at most, or a sha256 hex digest


# -- prefix validation -----------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["a", "faust", "x_y-z9", "a" * 32])
def test_valid_prefixes(prefix: str) -> None:
    assert Naming(prefix).prefix == prefix


@pytest.mark.parametrize("prefix", ["", "Faust", "1abc", "-a", "a.b", "a b", "a>", "a" * 33, "é"])
def test_invalid_prefixes_raise_config_error_naming_the_field_and_value(prefix: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Naming(prefix)
    error = caught.value
    assert (error.field, error.value) == ("prefix", prefix)
    assert f"'prefix' has value {prefix!r}" in str(error)


# -- KV keys ---------------------------------------------------------------------------------

_NAMES = st.text(min_size=1, max_size=40)


@given(group=_NAMES, topic=_NAMES, partition=st.integers(0, 10_000))
def test_offset_and_topic_keys_are_valid_kv_keys(group: str, topic: str, partition: int) -> None:
    naming = Naming()
    assert VALID_KEY_RE.match(naming.offset_key(group, topic, partition))
    assert VALID_KEY_RE.match(naming.topic_key(topic))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param(("a.b", "c", 0), ("a", "b.c", 0), id="dot-moves-between-group-and-topic"),
        pytest.param(("g", "t.1", 0), ("g", "t", 10), id="dot-moves-into-partition"),
    ],
)
def test_offset_keys_of_lookalike_partitions_differ(
    a: tuple[str, str, int], b: tuple[str, str, int]
) -> None:
    naming = Naming()
    assert naming.offset_key(*a) != naming.offset_key(*b)


@given(st.tuples(_NAMES, _NAMES, st.integers(0, 99)), st.tuples(_NAMES, _NAMES, st.integers(0, 99)))
def test_offset_keys_are_distinct_for_distinct_partitions(
    a: tuple[str, str, int], b: tuple[str, str, int]
) -> None:
    naming = Naming()
    assert (naming.offset_key(*a) == naming.offset_key(*b)) == (a == b)
