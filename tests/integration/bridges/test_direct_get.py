"""Batched direct gets against a real server: what they answer, in how many requests, and that
they leave no consumer behind."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from bridges.direct_get import MULTI_LAST_MAX, DirectGet
from tables.errors import BrokenError, ClosedError

pytestmark = pytest.mark.integration


@pytest.fixture
async def stream(js: JetStreamContext) -> str:
    """``S`` over ``s.>``, one message per subject kept, direct gets on."""
    await js.add_stream(StreamConfig(name="S", subjects=["s.>"], allow_direct=True, max_msgs_per_subject=1))
    return "S"


@pytest.fixture
async def direct(nc: Client, stream: str) -> AsyncIterator[DirectGet]:
    reader = await DirectGet(nc, stream, timeout=5).start()
    yield reader
    await reader.close()
    assert (await nc.jetstream().stream_info(stream)).state.consumer_count == 0


async def publish(js: JetStreamContext, subjects: list[str]) -> None:
    for subject in subjects:
        await js.publish(subject, subject.encode())


async def test_last_per_subject_answers_the_subjects_that_exist(js: JetStreamContext, direct: DirectGet) -> None:
    await publish(js, ["s.a.1", "s.a.2", "s.b.1", "s.a.1"])  # s.a.1 twice: its last is the answer
    found = await direct.last_per_subject(["s.a.1", "s.a.3", "s.*.2", "s.c.*"])
    assert sorted((m.subject, m.seq, m.data) for m in found) == [(b, s, b.encode()) for b, s in (("s.a.1", 4), ("s.a.2", 2))]
    assert await direct.last_per_subject(["s.x.1"]) == []
    assert await direct.last_per_subject([]) == []


async def test_more_subjects_than_one_request_answers_are_split(js: JetStreamContext, direct: DirectGet) -> None:
    subjects = [f"s.{group}.{n}" for group in ("a", "b") for n in range(600)]
    for subject in subjects:
        await js.publish(subject, b"")
    # One chunk of two wildcards matches 1,200 subjects: refused (413), split, read in two.
    found = await direct.last_per_subject(["s.a.*", "s.b.*"])
    assert sorted(m.subject for m in found) == sorted(subjects)
    # One wildcard that alone matches more cannot be split.
    for n in range(600, MULTI_LAST_MAX + 1):
        await js.publish(f"s.a.{n}", b"")
    with pytest.raises(BrokenError, match=r"s\.a\.\* matches more than the 1024 subjects"):
        await direct.last_per_subject(["s.a.*"])


async def test_an_answer_over_the_byte_budget_is_continued(nc: Client, js: JetStreamContext, stream: str) -> None:
    subjects = [f"s.k.{n}" for n in range(50)]
    for subject in subjects:
        await js.publish(subject, b"x" * 1000)
    reader = await DirectGet(nc, stream, max_bytes=4000, page=20).start()
    try:
        assert sorted(m.subject for m in await reader.last_per_subject(subjects)) == sorted(subjects)
        assert [m.subject for m in await reader.walk("s.k.*")] == subjects
    finally:
        await reader.close()


async def test_walk_reads_every_match_in_stream_order_a_page_at_a_time(
    nc: Client, js: JetStreamContext, stream: str
) -> None:
    subjects = [f"s.{'ab'[n % 2]}.{n}" for n in range(25)]
    await publish(js, subjects)
    reader = await DirectGet(nc, stream, page=4).start()
    try:
        walked = await reader.walk("s.a.*")
        assert [m.subject for m in walked] == [s for s in subjects if s.startswith("s.a.")]
        assert [m.seq for m in walked] == sorted(m.seq for m in walked)
        assert await reader.walk("s.z.*") == []
    finally:
        await reader.close()


async def test_last_of_a_filter(js: JetStreamContext, direct: DirectGet) -> None:
    await publish(js, ["s.a.1", "s.b.1", "s.a.2"])
    last = await direct.last("s.a.*")
    assert last is not None and (last.subject, last.seq) == ("s.a.2", 3)
    assert last.time > 0 and last.headers["Nats-Subject"] == "s.a.2"
    assert await direct.last("s.c.*") is None


async def test_a_stream_without_direct_gets_is_a_broken_read(nc: Client, js: JetStreamContext) -> None:
    await js.add_stream(StreamConfig(name="PLAIN", subjects=["p.>"]))
    reader = await DirectGet(nc, "PLAIN", timeout=5).start()
    try:
        with pytest.raises(BrokenError, match="does it allow them"):
            await reader.last_per_subject(["p.a"])
    finally:
        await reader.close()


async def test_a_closed_reader_refuses_reads(direct: DirectGet) -> None:
    await direct.close()
    await direct.close()
    with pytest.raises(ClosedError):
        await direct.walk("s.>")
    with pytest.raises(ClosedError):
        await direct.start()
