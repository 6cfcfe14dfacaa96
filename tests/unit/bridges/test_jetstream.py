"""Reading delivery metadata from a JetStream ack subject, checked against nats-py's own parser;
what changes when an existing stream is given other limits."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.aio.msg import Msg
from nats.js.api import DiscardPolicy, StreamConfig

from bridges.jetstream import AckInfo, bounded_duplicate_window, limits_update, parse_ack_subject, stored_at


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        pytest.param(
            "$JS.ACK.FAUST_t_0.c-1.1.42.7.1700000000123456789.3",
            AckInfo("c-1", 42, 7, 1_700_000_000_123_456_789, 3),
            id="9-tokens",
        ),
        pytest.param(
            "$JS.ACK._.ACCHASH.FAUST_t_0.c-1.2.42.7.1700000000123456789.0.r4nd0m",
            AckInfo("c-1", 42, 7, 1_700_000_000_123_456_789, 0),
            id="12-tokens-with-domain-and-account-hash",
        ),
        pytest.param(
            "$JS.ACK.hub.ACCHASH.S.C.1.1.1.1.0",
            AckInfo("C", 1, 1, 1, 0),
            id="11-tokens-without-the-random-token",
        ),
    ],
)
def test_ack_subjects_parse(reply: str, expected: AckInfo) -> None:
    assert parse_ack_subject(reply) == expected
    assert stored_at(reply) == expected.timestamp_ns / 1e9


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param("", id="empty"),
        pytest.param("_INBOX.abc.1", id="inbox"),
        pytest.param("$JS.ACK.S.C.1.2.3.4", id="8-tokens"),
        pytest.param("$JS.ACK.S.C.1.2.3.4.5.6", id="10-tokens"),
        pytest.param("$JS.NAK.S.C.1.2.3.4.5", id="not-ack"),
        pytest.param("JS.ACK.S.C.1.2.3.4.5", id="no-dollar"),
        pytest.param("$JS.ACK.S.C.1.x.3.4.5", id="stream-seq-not-a-number"),
        pytest.param("$JS.ACK.S.C.1.2.3.4.", id="pending-empty"),
        pytest.param("$JS.ACK._.H.S.C.1.2.three.4.5.r", id="12-tokens-consumer-seq-not-a-number"),
    ],
)
def test_anything_else_is_none(reply: str) -> None:
    assert parse_ack_subject(reply) is None


@pytest.mark.parametrize(
    "reply",
    ["", "_INBOX.abc.1", "$JS.ACK.S.C.1.2.3.4", "$JS.ACK.S.C.1.2.3.4.5.6", "$JS.NAK.S.C.1.2.3.4.5",
     "JS.ACK.S.C.1.2.3.4.5", "$JS.ACK.S.C.1.2.3.-4.5", "$JS.ACK.S.C.1.2.3..5", "$JS.ACK._.H.S.C.1.2.3.4x.5.r",
     "$JS.ACK.S.C.1.2.3.\u00b2.5"],
)
def test_no_stored_time_without_an_ack_subject_that_states_one(reply: str) -> None:
    assert stored_at(reply) is None


_NAME = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1)
_N = st.integers(0, 2**63 - 1)


@given(stream=_NAME, consumer=_NAME, delivered=_N, sseq=_N, cseq=_N, ts=st.integers(0, 2**62), pending=_N)
def test_agrees_with_nats_py_metadata_for_9_tokens(
    stream: str, consumer: str, delivered: int, sseq: int, cseq: int, ts: int, pending: int
) -> None:
    reply = f"$JS.ACK.{stream}.{consumer}.{delivered}.{sseq}.{cseq}.{ts}.{pending}"
    assert_agrees(reply)


@given(domain=_NAME, stream=_NAME, consumer=_NAME, sseq=_N, cseq=_N, ts=st.integers(0, 2**62), pending=_N)
def test_agrees_with_nats_py_metadata_for_12_tokens(
    domain: str, stream: str, consumer: str, sseq: int, cseq: int, ts: int, pending: int
) -> None:
    reply = f"$JS.ACK.{domain}.HASH.{stream}.{consumer}.1.{sseq}.{cseq}.{ts}.{pending}.rnd"
    assert_agrees(reply)


def assert_agrees(reply: str) -> None:
    ours = parse_ack_subject(reply)
    theirs = Msg(None, subject="x", reply=reply).metadata  # type: ignore[arg-type]
    assert ours is not None
    assert (ours.consumer, ours.stream_seq, ours.consumer_seq, ours.pending) == (
        theirs.consumer,
        theirs.sequence.stream,
        theirs.sequence.consumer,
        theirs.num_pending,
    )
    assert stored_at(reply) == ours.timestamp_ns / 1e9


# -- limits of an existing stream ------------------------------------------------------------

DAY = 86400.0
#: an existing stream as the server describes it: what the code before retention settings made
EXISTING = StreamConfig(
    name="S", subjects=["s"], max_age=0.0, max_bytes=-1, discard=DiscardPolicy.OLD, duplicate_window=120.0,
    num_replicas=1, allow_msg_ttl=False,
)


@pytest.mark.parametrize(
    ("wanted", "expected", "changes"),
    [
        pytest.param(
            StreamConfig(max_age=7 * DAY, duplicate_window=120.0),
            {"max_age": 7 * DAY},
            ["max_age unlimited -> 7d"],
            id="an-age-for-a-stream-kept-forever",
        ),
        pytest.param(
            StreamConfig(max_age=0.0, max_bytes=10 << 30, discard=DiscardPolicy.NEW),
            {"max_bytes": 10 << 30, "discard": DiscardPolicy.NEW},
            ["max_bytes unlimited -> 10 GiB", "discard old -> new"],
            id="a-byte-cap-refusing-when-full",
        ),
        pytest.param(
            StreamConfig(max_age=60.0, duplicate_window=120.0),
            {"max_age": 60.0, "duplicate_window": 60.0},
            ["max_age unlimited -> 1m", "duplicate_window 2m -> 1m"],
            id="a-duplicate-window-capped-by-a-shorter-age",
        ),
        pytest.param(
            StreamConfig(max_age=1.0, duplicate_window=120.0, allow_msg_ttl=True),
            {"max_age": 1.0, "duplicate_window": 1.0, "allow_msg_ttl": True},
            ["max_age unlimited -> 1s", "duplicate_window 2m -> 1s", "allow_msg_ttl off -> on"],
            id="faust-expires-1s",
        ),
        pytest.param(
            StreamConfig(max_age=7 * DAY, duplicate_window=600.0),
            {"max_age": 7 * DAY, "duplicate_window": 600.0},
            ["max_age unlimited -> 7d", "duplicate_window 2m -> 10m"],
            id="a-wider-duplicate-window",
        ),
        pytest.param(
            StreamConfig(max_age=7 * DAY, duplicate_window=0.0, discard=None),
            {"max_age": 7 * DAY},
            ["max_age unlimited -> 7d"],
            id="no-window-asked-keeps-the-current-one",
        ),
    ],
)
def test_limits_update_changes_only_the_limits(
    wanted: StreamConfig, expected: dict[str, Any], changes: list[str]
) -> None:
    update = limits_update(EXISTING, wanted)
    assert update is not None
    updated, described = update
    assert updated == dataclasses.replace(EXISTING, **expected)
    assert described == changes


def test_a_duplicate_window_is_never_narrowed_except_by_the_age() -> None:
    widened = dataclasses.replace(EXISTING, max_age=7 * DAY, duplicate_window=600.0)
    assert limits_update(widened, StreamConfig(max_age=7 * DAY, duplicate_window=120.0)) is None


def test_message_ttls_once_on_stay_on() -> None:
    on = dataclasses.replace(EXISTING, max_age=7 * DAY, allow_msg_ttl=True)
    assert limits_update(on, StreamConfig(max_age=7 * DAY, duplicate_window=120.0)) is None


@pytest.mark.parametrize(
    "wanted",
    [
        StreamConfig(max_age=0.0, max_bytes=-1, discard=DiscardPolicy.OLD, duplicate_window=120.0),
        StreamConfig(max_age=None, max_bytes=None, discard=None, duplicate_window=0.0),
    ],
    ids=["the-same", "unset-means-none-and-current"],
)
def test_equal_limits_are_no_update(wanted: StreamConfig) -> None:
    assert limits_update(EXISTING, wanted) is None


@pytest.mark.parametrize(
    ("window", "max_age", "bounded"), [(120.0, 0.0, 120.0), (120.0, 1.0, 1.0), (120.0, 600.0, 120.0), (0.0, 5.0, 0.0)]
)
def test_a_duplicate_window_is_bounded_by_the_max_age(window: float, max_age: float, bounded: float) -> None:
    assert bounded_duplicate_window(window, max_age) == bounded
