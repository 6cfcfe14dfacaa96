"""Reading delivery metadata from a JetStream ack subject, checked against nats-py's own parser."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.aio.msg import Msg

from bridges.jetstream import AckInfo, parse_ack_subject


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
