"""Looking a final up on a real results stream: found by its msg id among the messages of its
student since its window ended, whatever other windows and students came before and after."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from bridges.direct_get import DirectGet
from bridges.public.published_results import SCAN, PublishedResults
from bridges.server import NatsServer

pytestmark = pytest.mark.integration

SUBJECT = "results.engagement.s1"


def final(end: float, student: str = "s1") -> bytes:
    start = end - 60
    window = {key: datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z") for key, t in
              (("start", start), ("end", end))}
    return json.dumps({"metric": "engagement", "key": {"student_id": student}, "window": window,
                       "final": True, "events": 1, "values": {}}).encode()


@pytest.fixture
async def published(nc: Client, js: JetStreamContext) -> AsyncIterator[PublishedResults]:
    await js.add_stream(StreamConfig(name="R", subjects=["results.>"], allow_direct=True))
    reader = await DirectGet(nc, "R", timeout=5).start()
    yield PublishedResults(reader)
    await reader.close()
    assert (await js.stream_info("R")).state.consumer_count == 0


async def test_a_published_final_is_found_among_its_students_later_results(
    js: JetStreamContext, published: PublishedResults
) -> None:
    end = time.time() - 30  # the window ended before any of this was stored
    await js.publish("results.engagement.s2", final(end, "s2"), headers={"Nats-Msg-Id": "result:other"})
    await js.publish(SUBJECT, final(end), headers={"Nats-Msg-Id": "result:engagement.s1.1"})
    for n in range(SCAN // 2):  # later windows of the same student, and of others
        await js.publish(SUBJECT, final(end + 60 * (n + 1)), headers={"Nats-Msg-Id": f"result:later-{n}"})
        await js.publish("results.engagement.s3", b"{}", headers={"Nats-Msg-Id": f"result:s3-{n}"})
    assert await published.holds(SUBJECT, "result:engagement.s1.1", final(end))
    # Not published: another window of the student, and the same id on another student's subject.
    assert not await published.holds(SUBJECT, "result:engagement.s1.2", final(end))
    assert not await published.holds("results.engagement.s2", "result:engagement.s1.1", final(end, "s2"))


async def test_a_final_published_before_its_window_ended_is_not_looked_for_there(
    js: JetStreamContext, published: PublishedResults
) -> None:
    # The lookup starts at the window's end: a message stored earlier cannot be its publish.
    await js.publish(SUBJECT, b"{}", headers={"Nats-Msg-Id": "result:engagement.s1.9"})
    assert not await published.holds(SUBJECT, "result:engagement.s1.9", final(time.time() + 5))


async def test_what_cannot_be_told_is_published(published: PublishedResults, nats_server: NatsServer) -> None:
    assert not await published.holds(SUBJECT, "result:x", b"not json")
    assert not await published.holds(SUBJECT, "result:x", json.dumps({"window": {}}).encode())
    # The lookup fails (here: its connection is gone): the caller publishes, and the stream's
    # dedupe drops a repeat within its window.
    client = await nats.connect(nats_server.url)
    reader = await DirectGet(client, "R", timeout=5).start()
    await client.close()
    assert not await PublishedResults(reader).holds(SUBJECT, "result:x", final(time.time()))
